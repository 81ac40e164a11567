"""OpenAI-compatible `POST /v1/chat/completions` (contract §10), over Spool jobs.

`model` is a Spool agent or model name; the messages are the whole conversation (as
OpenAI clients send it), so the job does not add the session's memory. Streamed, the
answer is the `openai` format; otherwise one `chat.completion` once the job ends. Either
way `x-spool-job-id` and `x-spool-session-id` say where a client that lost the stream
resumes it: `GET /v1/sessions/{session}/events?job_id={job}&format=openai`.
"""

import functools
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from spool.api.adapters import agent_or_model, decode_body, job_request
from spool.api.auth import Tenant
from spool.api.errors import ApiError
from spool.api.formats import Format
from spool.api.formats.base import decode_event
from spool.api.formats.openai import OpenAI, completion
from spool.api.hub import TERMINAL, SessionGone
from spool.api.openapi import Raw, doc
from spool.api.routes_jobs import (
    IdempotencyKey,
    accept_request,
    json_response,
    start_of,
    stream_accepted,
)
from spool.api.state import AppState, State
from spool.api.submission import Acceptance
from spool.shared.ids import before, parse_stream_id
from spool.shared.jobs import JobRequest
from spool.shared.keys import SessionRef
from spool.shared.streams import job_marks
from spool_client.events import JobCancelled, JobCompleted, JobFailed

router = APIRouter()

_ROLES = {"user": "user", "assistant": "assistant"}


class ContentPart(msgspec.Struct):
    type: str
    text: str | None = None


class ChatMessage(msgspec.Struct, kw_only=True):
    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class Function(msgspec.Struct):
    name: str


class ToolSpec(msgspec.Struct):
    function: Function
    type: str = "function"


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[ChatMessage]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[str | ToolSpec] | None = None
    # Spool's own fields (with the SDKs: `extra_body={...}`)
    session_id: str | None = None
    parameters: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None


def to_job(state: AppState, req: ChatCompletionRequest) -> JobRequest:
    system = "\n\n".join(m.text() for m in req.messages if m.role in ("system", "developer"))
    turns = [
        {"role": _ROLES[m.role], "content": m.text()}
        for m in req.messages
        if m.role in _ROLES and m.text()
    ]
    if not turns:
        raise ApiError(422, "invalid_field", "messages: no user or assistant text.")
    sampling = {
        "max_tokens": req.max_completion_tokens or req.max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
    }
    parameters = {**(req.parameters or {}), **{k: v for k, v in sampling.items() if v is not None}}
    tools = [t if isinstance(t, str) else t.function.name for t in req.tools or []]
    return job_request(
        input=turns,
        history=False,
        session_id=req.session_id,
        system=system or None,
        tools=tools or None,
        parameters=parameters,
        metadata=req.metadata,
        **agent_or_model(state, req.model),
    )


_ANSWER = Raw(
    {
        "application/json": {"schema": {"type": "object", "description": "a `chat.completion`"}},
        "text/event-stream": {
            "schema": {"type": "string", "description": "`chat.completion.chunk`s (`stream`)"}
        },
    }
)


@router.post(
    "/v1/chat/completions",
    tags=["formats"],
    openapi_extra=doc(
        {200: _ANSWER},
        body=ChatCompletionRequest,
        errors=(400, 401, 404, 409, 413, 415, 422, 429, 503),
        descriptions={200: "one `chat.completion`, or with `stream: true` its chunks"},
    ),
)
async def chat_completions(
    request: Request, state: State, tenant: Tenant, idempotency_key: IdempotencyKey = None
) -> Response:
    """Run the conversation as a job; stream `chat.completion.chunk`s or answer one
    `chat.completion`."""
    req = await decode_body(request, state, ChatCompletionRequest)
    done = await accept_request(state, tenant, idempotency_key, to_job(state, req))
    accepted = done.accepted
    ids = {"x-spool-job-id": accepted.job_id, "x-spool-session-id": accepted.session_id}
    if req.stream:
        usage = req.stream_options is not None and req.stream_options.include_usage
        fmt = Format("openai", functools.partial(OpenAI, include_usage=usage))
        return await stream_accepted(state, tenant, done, fmt, ids)
    session = SessionRef(tenant, accepted.session_id)
    terminal = await wait_for_end(state, session, done)
    if isinstance(terminal, JobFailed):
        raise ApiError(
            502, terminal.error.code, terminal.error.message, {**ids, "x-should-retry": "false"}
        )
    record = await state.store.load(session, accepted.job_id)
    created_ms = int(record.created_at.timestamp() * 1000) if record else terminal.ts
    model = record.model if record else req.model
    response = json_response(completion(terminal, created_ms, model))
    response.headers.update(ids)
    return response


async def wait_for_end(
    state: AppState, session: SessionRef, done: Acceptance
) -> JobCompleted | JobFailed | JobCancelled:
    """The accepted job's terminal event, followed through the hub like any stream reader
    (from where the submission left the stream, as `stream_accepted` does)."""
    job_id, queued_id = done.accepted.job_id, done.queued_id
    if queued_id is None:  # an earlier request's answer (`Idempotency-Key`): read the marks
        queued_id = (await job_marks(state.clients.streams, state.keys, session, job_id)).queued_id
    queued = parse_stream_id(queued_id) if queued_id else None
    assert queued is not None  # the submission appended it before answering
    after, job = before(queued), job_id.encode()
    async with state.hub.follow(session, start_of(done)) as follower:
        while True:
            try:
                batch = await follower.next_batch(after, state.settings.sse_ping_s)
            except SessionGone as exc:
                raise ApiError(410, "session_deleted", "The session was deleted.") from exc
            if batch is None:
                raise ApiError(
                    503, "shutting_down", "The server is stopping; retry.", {"Retry-After": "1"}
                )
            for entry in batch:
                after = entry.sid
                if entry.job == job and entry.kind in TERMINAL:
                    event = decode_event(entry.kind, entry.data)
                    assert isinstance(event, JobCompleted | JobFailed | JobCancelled)
                    return event
