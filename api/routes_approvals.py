"""`POST /v1/jobs/{job_id}/approvals/{call_id}`: a human decides a pending tool call (§7).

The decision is recorded once (a second one is a 409); the last decision of a parked job
enqueues its continuation, which any worker runs (see `shared.approvals`).
"""

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from spool.api.auth import Tenant
from spool.api.errors import ApiError, decode_json
from spool.api.openapi import doc
from spool.api.routes_jobs import json_response, owned_job, read_body
from spool.api.state import State
from spool.shared.jobs import Decision


class DecisionRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    approved: bool
    reason: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    arguments: dict[str, Any] | None = None  # the call as it should run (an edit)


class DecisionView(msgspec.Struct):
    call_id: str
    approved: bool


_decoder = msgspec.json.Decoder(DecisionRequest)

router = APIRouter()


@router.post(
    "/v1/jobs/{job_id}/approvals/{call_id}",
    tags=["jobs"],
    openapi_extra=doc(
        {200: DecisionView}, body=DecisionRequest, errors=(400, 401, 404, 409, 413, 415, 422, 503)
    ),
)
async def decide(
    job_id: str, call_id: str, request: Request, state: State, tenant: Tenant
) -> Response:
    """Approve (optionally with edited arguments) or reject a tool call that waits."""
    body = decode_json(_decoder, await read_body(request, state.settings.max_body_bytes))
    rec = await owned_job(state, job_id, tenant)
    decision = Decision(approved=body.approved, reason=body.reason, arguments=body.arguments)
    verdict, continuation = await state.approvals.decide(rec, call_id, decision)
    match verdict:
        case "unknown":
            raise ApiError(
                404, "approval_not_found", f"Job {job_id!r} waits on no call {call_id!r}."
            )
        case "decided" | "closed":
            raise ApiError(409, "already_decided", f"The call {call_id!r} is already decided.")
        case "ready":
            await state.approvals.wake(rec.session, job_id, continuation)
        case "recorded":
            pass
    return json_response(DecisionView(call_id, body.approved))
