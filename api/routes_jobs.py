"""Job routes: submit, submit-and-stream, and read a job (contract §2)."""

from typing import Annotated

import msgspec
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from spool.api.auth import Tenant
from spool.api.cancel import request_cancel
from spool.api.errors import ApiError
from spool.api.formats import SPOOL, Format, FormatName, parse_format
from spool.api.hub import Start, entry
from spool.api.idempotency import Accepted
from spool.api.openapi import EventStream, doc
from spool.api.sse import Cursor, resolve_cursor, sse_response
from spool.api.state import AppState, State
from spool.api.submission import Acceptance, decode_request, submit_job
from spool.shared.ids import before, parse_stream_id
from spool.shared.jobs import FINISHED_STATUSES, JobRecord, JobRequest, JobView, PendingApproval
from spool.shared.keys import SessionRef

router = APIRouter()

SUBMIT_ERRORS = (400, 401, 404, 409, 413, 415, 422, 429, 503)
EXAMPLE = {"input": "Tell me about streams", "model": "simulated"}


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


MAX_IDEMPOTENCY_KEY = 255
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=MAX_IDEMPOTENCY_KEY)
]


async def accept(request: Request, state: AppState, tenant: str, key: str | None) -> Acceptance:
    """Decode, validate and enqueue the body, once per `Idempotency-Key`."""
    req = decode_request(await read_body(request, state.settings.max_body_bytes))
    return await accept_request(state, tenant, key, req)


async def accept_request(
    state: AppState, tenant: str, key: str | None, req: JobRequest
) -> Acceptance:
    """Enqueue `req`, once per `Idempotency-Key` (every route that runs a job comes here)."""
    if key is None:
        return await submit_job(state, tenant, req)
    first = await state.idempotency.claim(tenant, key, req)
    if first is not None:
        return Acceptance(first)
    try:
        done = await submit_job(state, tenant, req)
    except BaseException:
        await state.idempotency.release(tenant, key)
        raise
    await state.idempotency.complete(tenant, key, req, done.accepted)
    return done


@router.post(
    "/v1/jobs",
    status_code=202,
    tags=["jobs"],
    openapi_extra=doc({202: Accepted}, body=JobRequest, errors=SUBMIT_ERRORS, example=EXAMPLE),
)
async def create_job(
    request: Request, state: State, tenant: Tenant, idempotency_key: IdempotencyKey = None
) -> Response:
    """Enqueue a generation job; follow it at `events_url`."""
    return await create_job_response(request, state, tenant, idempotency_key)


async def create_job_response(
    request: Request, state: AppState, tenant: str, key: str | None
) -> Response:
    """`POST /v1/jobs`, also served before FastAPI (`api.jobs_path`)."""
    done = await accept(request, state, tenant, key)
    return json_response(done.accepted, 202)


@router.post(
    "/v1/stream",
    tags=["jobs"],
    openapi_extra=doc({200: EventStream}, body=JobRequest, errors=SUBMIT_ERRORS, example=EXAMPLE),
)
async def create_and_stream(
    request: Request,
    state: State,
    tenant: Tenant,
    idempotency_key: IdempotencyKey = None,
    format: FormatName = SPOOL,
) -> Response:
    """Enqueue a job and answer with its event stream (resumable on the session's events URL)."""
    return await create_and_stream_response(request, state, tenant, idempotency_key, format)


async def create_and_stream_response(
    request: Request, state: AppState, tenant: str, key: str | None, format: str
) -> Response:
    """`POST /v1/stream`, also served before FastAPI (`api.jobs_path`)."""
    fmt = parse_format(format)  # before anything is enqueued
    done = await accept(request, state, tenant, key)
    return await stream_accepted(state, tenant, done, fmt)


async def stream_accepted(
    state: AppState,
    tenant: str,
    done: Acceptance,
    fmt: Format | None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The stream of a job just accepted, from its `job.queued`; the headers name the job and
    its session, for a client that loses the stream and resumes it on the events route."""
    accepted = done.accepted
    session = SessionRef(tenant, accepted.session_id)
    queued = parse_stream_id(done.queued_id) if done.queued_id is not None else None
    if queued is not None:  # just appended: no need to read the job's marks
        cursor: Cursor | None = Cursor(after=before(queued), job_id=accepted.job_id.encode())
    else:
        cursor = await resolve_cursor(state, session, accepted.job_id, None)
    ids = {"x-spool-job-id": accepted.job_id, "x-spool-session-id": accepted.session_id}
    headers = {**ids, **(headers or {})}
    return sse_response(state, session, cursor, fmt, headers, start_of(done))


def start_of(done: Acceptance) -> Start | None:
    """Where the hub may begin the job's new topic without reading Redis: the stream as
    the submit script left it (a one-script submission; else None)."""
    if done.queued_id is None or done.born is None or done.queued_data is None:
        return None
    job = done.accepted.job_id.encode()
    return Start(done.born, entry(done.queued_id, b"job.queued", job, done.queued_data))


async def owned_job(state: AppState, job_id: str, tenant: str) -> JobRecord:
    """The job's record; 404 if it does not exist or belongs to another tenant."""
    session = await state.store.locate(job_id)
    rec = None
    if session is not None and session.tenant == tenant:
        rec = await state.store.load(session, job_id)
    if rec is None:
        raise ApiError(404, "job_not_found", f"No job {job_id!r}.")
    return rec


@router.get(
    "/v1/jobs/{job_id}", tags=["jobs"], openapi_extra=doc({200: JobView}, errors=(401, 404, 503))
)
async def get_job(job_id: str, state: State, tenant: Tenant) -> Response:
    rec = await owned_job(state, job_id, tenant)
    pending: list[PendingApproval] = []
    if rec.waiting and rec.parked is not None:
        decided = await state.approvals.decisions(rec, rec.parked)
        pending = [p for p in rec.parked.pending if p.call_id not in decided]
    return json_response(JobView.of(rec, pending))


class CancelView(msgspec.Struct):
    job_id: str
    status: str


@router.post(
    "/v1/jobs/{job_id}/cancel",
    status_code=202,
    tags=["jobs"],
    openapi_extra=doc(
        {202: CancelView, 200: CancelView},
        errors=(401, 404, 503),
        descriptions={202: "Cancelling", 200: "The job had already finished: its status"},
    ),
)
async def cancel_job(job_id: str, state: State, tenant: Tenant) -> Response:
    """Stop the generation; the session gets `job.cancelled`. A finished job: 200, a no-op."""
    rec = await owned_job(state, job_id, tenant)
    if rec.status in FINISHED_STATUSES:
        return json_response(CancelView(job_id, rec.status), 200)
    await request_cancel(state, rec.session, job_id)
    return json_response(CancelView(job_id, "cancelling"), 202)
