"""An AI SDK chat backend (contract §10): `useChat({ api: "<spool>/v1/ui/chat", resume: true })`.

`DefaultChatTransport` (package `ai`, `http-chat-transport`) POSTs `{id, messages,
trigger, messageId}` plus its `body` option's fields to `api`, and reconnects with
`GET {api}/{id}/stream`, where `204` means "no active stream" and a stream is read as a
replay of the whole message from its `start` (`resumeStreamIsReplay`).
"""

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from spool.api.adapters import decode_body, job_request
from spool.api.auth import Tenant
from spool.api.errors import ApiError
from spool.api.formats import FORMATS
from spool.api.openapi import doc, other_stream
from spool.api.routes_jobs import IdempotencyKey, accept_request, stream_accepted
from spool.api.sse import SSE_HEADERS, resolve_cursor, sse_response
from spool.api.state import AppState, State
from spool.shared.jobs import FINISHED_STATUSES, JobRequest, OnBusy
from spool.shared.keys import SessionRef
from spool.shared.streams import job_marks

router = APIRouter()
events_router = APIRouter()

AI_SDK = FORMATS["ai-sdk"]
AI_SDK_STREAM = other_stream("AI SDK UI message stream v1 (docs/formats.md)")
ADAPTER_ERRORS = (400, 401, 404, 409, 413, 415, 422, 429, 503)


class UIPart(msgspec.Struct):
    type: str
    text: str | None = None


class UIMessage(msgspec.Struct, kw_only=True):
    role: str
    parts: list[UIPart] = []
    id: str = ""

    def text(self) -> str:
        return "".join(p.text or "" for p in self.parts if p.type == "text")


class UIChatRequest(msgspec.Struct, kw_only=True, rename={"message_id": "messageId"}):
    """What `DefaultChatTransport` sends, plus any job field given through its `body`."""

    id: str
    messages: list[UIMessage]
    trigger: str = "submit-message"
    message_id: str | None = None
    model: str | None = None
    agent: str | None = None
    system: str | None = None
    tools: list[str] | None = None
    parameters: dict[str, Any] | None = None
    max_steps: int | None = None
    metadata: dict[str, str] | None = None
    on_busy: OnBusy | None = None
    require_approval: bool | list[str] | None = None
    timeout_s: float | None = None


def to_job(req: UIChatRequest) -> JobRequest:
    """Submit: the last user message, the session keeping the conversation. Regenerate: the
    conversation as the client has it (without the answer it replaces), no session memory."""
    turns = [
        {"role": m.role, "content": m.text()}
        for m in req.messages
        if m.role in ("user", "assistant") and m.text()
    ]
    users = [t for t in turns if t["role"] == "user"]
    if not users:
        raise ApiError(422, "no_user_message", "The messages hold no user text to answer.")
    regenerate = req.trigger == "regenerate-message"
    return job_request(
        input=turns if regenerate else users[-1]["content"],
        history=False if regenerate else None,
        session_id=req.id,
        agent=req.agent,
        model=req.model,
        system=req.system,
        tools=req.tools,
        parameters=req.parameters,
        max_steps=req.max_steps,
        metadata=req.metadata,
        on_busy=req.on_busy,
        require_approval=req.require_approval,
        timeout_s=req.timeout_s,
    )


@router.post(
    "/v1/ui/chat",
    tags=["formats"],
    openapi_extra=doc({200: AI_SDK_STREAM}, body=UIChatRequest, errors=ADAPTER_ERRORS),
)
async def ui_chat(
    request: Request, state: State, tenant: Tenant, idempotency_key: IdempotencyKey = None
) -> Response:
    """Run a job in session `id` and answer with its AI SDK UI message stream."""
    req = await decode_body(request, state, UIChatRequest)
    done = await accept_request(state, tenant, idempotency_key, to_job(req))
    return await stream_accepted(state, tenant, done, AI_SDK)


@events_router.get(
    "/v1/ui/chat/{chat_id}/stream",
    tags=["formats"],
    openapi_extra=doc(
        {200: AI_SDK_STREAM, 204: None},
        errors=(401, 404, 422, 429, 503),
        descriptions={204: "The chat has no unfinished job"},
    ),
)
async def ui_chat_reconnect(chat_id: str, state: State, tenant: Tenant) -> Response:
    """The chat's unfinished job, replayed from its `start`; 204 when there is none."""
    session = SessionRef(tenant, chat_id)
    job_id = await unfinished_job(state, session)
    if job_id is None:
        return Response(status_code=204, headers=SSE_HEADERS)
    cursor = await resolve_cursor(state, session, job_id, None)
    return sse_response(state, session, cursor, AI_SDK, {"x-spool-job-id": job_id})


async def unfinished_job(state: AppState, session: SessionRef) -> str | None:
    """The oldest job of the tenant's session that has not ended (None for a session that
    does not exist or is another tenant's: to this tenant, it has nothing running). The
    stream decides: a worker appends the terminal event before it updates the record, and
    a client that just read the end must get 204."""
    info = await state.session_owner(session)
    if info is None or info.tenant != session.tenant:
        return None
    for job in await state.store.load_many(session, await state.store.job_ids(session)):
        if job.status in FINISHED_STATUSES:
            continue
        marks = await job_marks(state.clients.streams, state.keys, session, job.job_id)
        if marks.terminal_id is None:
            return job.job_id
    return None
