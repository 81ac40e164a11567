"""Job routes: submit, submit-and-stream, and read a job (contract §2)."""

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.auth import Tenant
from api.errors import ApiError
from api.sse import resolve_cursor, sse_response
from api.state import State
from api.submission import decode_request, submit_job
from shared.jobs import JobRequest, JobView

router = APIRouter()

_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": msgspec.json.schema(JobRequest)}},
    }
}


def json_response(obj: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(obj), status_code=status, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"The body is over {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "payload_too_large", f"The body is over {limit} bytes.")
    return bytes(body)


@router.post("/v1/jobs", status_code=202, openapi_extra=_BODY, tags=["jobs"])
async def create_job(request: Request, state: State, tenant: Tenant) -> Response:
    """Enqueue a generation job; follow it at `events_url`."""
    req = decode_request(await read_body(request, state.settings.max_body_bytes))
    return json_response(await submit_job(state, tenant, req), 202)


@router.post("/v1/stream", openapi_extra=_BODY, tags=["jobs"])
async def create_and_stream(request: Request, state: State, tenant: Tenant) -> Response:
    """Enqueue a job and answer with its event stream (resumable on the session's events URL)."""
    req = decode_request(await read_body(request, state.settings.max_body_bytes))
    accepted = await submit_job(state, tenant, req)
    cursor = await resolve_cursor(state, accepted.session_id, accepted.job_id, None)
    return sse_response(state, accepted.session_id, cursor)


@router.get("/v1/jobs/{job_id}", tags=["jobs"])
async def get_job(job_id: str, state: State, tenant: Tenant) -> Response:
    rec = await state.store.load(job_id)
    if rec is None or rec.tenant != tenant:
        raise ApiError(404, "job_not_found", f"No job {job_id!r}.")
    return json_response(JobView.of(rec))
