"""Turning a `POST /v1/jobs` body into a queued job: validate, claim the session, enqueue."""

from datetime import UTC, datetime

import msgspec

from api.cancel import request_cancel
from api.errors import ApiError
from api.idempotency import Accepted
from api.state import AppState
from shared.events import ErrorInfo, JobFailed, JobQueued, Usage, encoder
from shared.ids import new_job_id, new_session_id, now_ms
from shared.jobs import JobRecord, JobRequest, JobSpec, SimulatedParameters
from shared.streams import Outgoing

KNOWN_PROVIDERS = frozenset({"simulated", "anthropic", "openai"})

_decoder = msgspec.json.Decoder(JobRequest)


def decode_request(body: bytes) -> JobRequest:
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_field", str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}") from exc


def validate_model(model: str, parameters: dict[str, object]) -> None:
    provider = model.partition(":")[0]
    if provider not in KNOWN_PROVIDERS:
        known = ", ".join(sorted(KNOWN_PROVIDERS))
        raise ApiError(422, "unknown_model", f"Unknown provider {provider!r} (known: {known}).")
    if provider == "simulated":
        try:
            msgspec.convert(parameters, SimulatedParameters)
        except msgspec.ValidationError as exc:
            raise ApiError(422, "invalid_field", f"parameters: {exc}") from exc


async def submit_job(state: AppState, tenant: str, req: JobRequest) -> Accepted:
    model = req.model or state.settings.default_model
    validate_model(model, req.parameters)
    session_id = req.session_id or new_session_id()
    owner = await state.store.claim_session(session_id, tenant)
    if owner.tenant != tenant:
        raise ApiError(404, "session_not_found", f"No session {session_id!r}.")
    if req.on_busy == "reject" and await state.sessions.busy(session_id):
        raise _busy(session_id)
    job_id = new_job_id()
    spec = JobSpec(
        job_id=job_id,
        session_id=session_id,
        tenant=tenant,
        model=model,
        messages=req.messages(),
        system=req.system,
        tools=req.tools or [],
        parameters=req.parameters,
        max_steps=req.max_steps,
        metadata=req.metadata,
        history=req.history,
        agent=req.agent,
        on_busy=req.on_busy,
    )
    now = datetime.now(UTC)
    await state.store.create(
        JobRecord(
            job_id=job_id,
            session_id=session_id,
            tenant=tenant,
            status="queued",
            model=model,
            created_at=now,
            spec=spec,
        )
    )
    queued = JobQueued(
        job_id=job_id,
        seq=0,
        ts=now_ms(),
        session_id=session_id,
        model=model,
        metadata=req.metadata,
    )
    await state.writer.append(
        session_id, job_id, 0, [Outgoing("job.queued", 0, encoder.encode(queued))]
    )
    try:
        await _admit(state, session_id, job_id, req.on_busy)
    except ApiError as exc:
        await _end_unqueued(
            state, session_id, job_id, ErrorInfo(code=exc.code, message=exc.message)
        )
        raise
    except Exception:
        error = ErrorInfo(code="enqueue_failed", message="The job could not be queued.")
        await _end_unqueued(state, session_id, job_id, error)
        raise
    return Accepted(
        job_id=job_id,
        session_id=session_id,
        status="queued",
        events_url=f"/v1/sessions/{session_id}/events?job_id={job_id}",
    )


def _busy(session_id: str) -> ApiError:
    return ApiError(409, "session_busy", f"Session {session_id!r} has a job running.")


async def _admit(state: AppState, session_id: str, job_id: str, on_busy: str) -> None:
    """Place the job in its session's FIFO; enqueue it if it is first in line."""
    admission = await state.sessions.admit(
        session_id, job_id, "reject" if on_busy == "reject" else "enqueue"
    )
    if admission.verdict == "busy":  # lost a race with another submission
        raise _busy(session_id)
    if on_busy == "interrupt":
        for ahead in admission.ahead:
            await request_cancel(state, ahead)
    if admission.verdict == "run":
        await state.queue.enqueue_job("run_job", job_id, _job_id=job_id)


async def _end_unqueued(state: AppState, session_id: str, job_id: str, error: ErrorInfo) -> None:
    """The job is in the stream but will not run: end it, so no follower waits forever."""
    failed = JobFailed(job_id=job_id, seq=1, ts=now_ms(), error=error, usage=Usage())
    try:
        await state.writer.append(
            session_id, job_id, 0, [Outgoing("job.failed", 1, encoder.encode(failed))]
        )
        await state.store.update(job_id, status="failed", error=error)
    except Exception:  # Redis is away: the caller gets a 503 all the same
        return
