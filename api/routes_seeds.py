"""Routes in the request shapes of two systems Spool replaces (contract §10): each maps
its body onto a job and answers with that job's stream in its format (`grampus`,
`generate`), resumable on the events route with the same `format`."""

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from spool.api.adapters import agent_or_model, decode_body, job_request
from spool.api.auth import Tenant
from spool.api.errors import ApiError
from spool.api.formats import FORMATS
from spool.api.openapi import doc, other_stream
from spool.api.routes_jobs import IdempotencyKey, accept_request, stream_accepted
from spool.api.state import State

router = APIRouter()

SEED_ERRORS = (400, 401, 404, 409, 413, 415, 422, 429, 503)


class GrampusRequest(msgspec.Struct, kw_only=True):
    """grampus-style: the agent to run, the user's input, the conversation's session."""

    agent_id: str
    input: str
    session_id: str | None = None
    parameters: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None


@router.post(
    "/stream",
    tags=["formats"],
    openapi_extra=doc(
        {200: other_stream("grampus-style chunks: delta, is_final, step, tool_call, token_usage")},
        body=GrampusRequest,
        errors=SEED_ERRORS,
    ),
)
async def grampus_stream(
    request: Request, state: State, tenant: Tenant, idempotency_key: IdempotencyKey = None
) -> Response:
    """Run `agent_id` (an agent, or a model name) on `input` in `session_id`; stream
    `{delta, is_final, step, tool_call}` frames, `token_usage` on the last."""
    req = await decode_body(request, state, GrampusRequest)
    job = job_request(
        input=req.input,
        session_id=req.session_id,
        parameters=req.parameters,
        metadata=req.metadata,
        **agent_or_model(state, req.agent_id),
    )
    done = await accept_request(state, tenant, idempotency_key, job)
    return await stream_accepted(state, tenant, done, FORMATS["grampus"])


class InputItem(msgspec.Struct, kw_only=True):
    type: str = "text"
    name: str = "prompt"
    content: str


class Turn(msgspec.Struct):
    role: str
    content: str


class GenerateRequest(msgspec.Struct, kw_only=True):
    """generation-API-style: a service and model, typed named inputs, optional history."""

    model_name: str
    input: list[InputItem]
    service_name: str | None = None
    parameters: dict[str, Any] | None = None
    history: list[Turn] | bool | None = None
    session_id: str | None = None


@router.post(
    "/api/v1/generate/stream",
    tags=["formats"],
    openapi_extra=doc(
        {200: other_stream("generation-API chunks: type, name, content, done, index, is_final")},
        body=GenerateRequest,
        errors=SEED_ERRORS,
    ),
)
async def generate_stream(
    request: Request, state: State, tenant: Tenant, idempotency_key: IdempotencyKey = None
) -> Response:
    """Generate from the text inputs (an input named `system` is the system prompt);
    `history` is earlier turns `[{role, content}]` (or a bool: use the session's memory)."""
    req = await decode_body(request, state, GenerateRequest)
    texts = [i for i in req.input if i.type == "text" and i.content]
    prompt = "\n\n".join(i.content for i in texts if i.name != "system")
    system = "\n\n".join(i.content for i in texts if i.name == "system")
    if not prompt:
        raise ApiError(422, "invalid_field", "input: no text item to generate from.")
    earlier = req.history if isinstance(req.history, list) else []
    turns = [{"role": t.role, "content": t.content} for t in earlier]
    job = job_request(
        input=[*turns, {"role": "user", "content": prompt}],
        history=req.history if isinstance(req.history, bool) else (False if turns else None),
        session_id=req.session_id,
        system=system or None,
        parameters=req.parameters,
        metadata={"service_name": req.service_name} if req.service_name else None,
        **agent_or_model(state, req.model_name),
    )
    done = await accept_request(state, tenant, idempotency_key, job)
    return await stream_accepted(state, tenant, done, FORMATS["generate"])
