"""Turning a `POST /v1/jobs` body into a queued job: validate, claim the session, enqueue."""

from datetime import UTC, datetime

import msgspec

from spool.api.cancel import request_cancel
from spool.api.errors import ApiError
from spool.api.idempotency import Accepted
from spool.api.resolve import (
    DEFAULT_MAX_STEPS,
    apply_agent,
    approval_timeout,
    chain_steps,
    check_tools,
    input_messages,
    job_timeout,
    validate_model,
)
from spool.api.state import AppState
from spool.shared.agents import AgentsFile, AgentsFileError, load_agents
from spool.shared.ids import new_job_id, new_session_id, now_ms
from spool.shared.jobs import JobRecord, JobRequest, JobSpec
from spool.shared.settings import Settings
from spool.shared.streams import Outgoing
from spool_client.events import ErrorInfo, JobFailed, JobQueued, Usage, encoder

_decoder = msgspec.json.Decoder(JobRequest)


def decode_request(body: bytes) -> JobRequest:
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_field", str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}") from exc


def agents_of(state: AppState) -> AgentsFile:
    try:
        return load_agents(state.settings.agents_file)
    except AgentsFileError as exc:
        raise ApiError(500, "agents_file_invalid", str(exc)) from exc


def build_spec(
    req: JobRequest, agents: AgentsFile, settings: Settings, tenant: str, session_id: str
) -> JobSpec:
    """The worker's spec: agent values applied, input rendered, chain and limits checked."""
    req = apply_agent(req, agents, settings.default_model)
    messages = input_messages(req)
    model = req.model or settings.default_model
    validate_model(model, req.parameters, agents.providers())
    chain = chain_steps(req, agents.providers())
    return JobSpec(
        job_id=new_job_id(),
        session_id=session_id,
        tenant=tenant,
        model=model,
        messages=messages,
        system=req.system,
        tools=req.tools or [],
        parameters=req.parameters,
        max_steps=req.max_steps or DEFAULT_MAX_STEPS,
        metadata=req.metadata,
        history=req.history,
        agent=req.agent,
        on_busy=req.on_busy,
        chain=chain,
        variables=req.variables,
        require_approval=req.require_approval or False,
        approval_timeout_s=approval_timeout(req.parameters, settings.approval_timeout_s),
        timeout_s=job_timeout(req, settings),
    )


async def submit_job(state: AppState, tenant: str, req: JobRequest) -> Accepted:
    session_id = req.session_id or new_session_id()
    spec = build_spec(req, agents_of(state), state.settings, tenant, session_id)
    await check_tools(
        state.clients.main, {*spec.tools, *(t for step in spec.chain for t in step.tools)}
    )
    if req.on_busy == "reject" and await state.sessions.busy(session_id):
        raise _busy(session_id)  # the common case, before anything is written
    job_id, model = spec.job_id, spec.model
    now = datetime.now(UTC)
    owner = await state.store.create(
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
    if owner != tenant:
        raise ApiError(404, "session_not_found", f"No session {session_id!r}.")
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
    """Place the job in its session's FIFO (which enqueues it if it is first in line)."""
    admission = await state.sessions.admit(
        session_id, job_id, "reject" if on_busy == "reject" else "enqueue"
    )
    if admission.verdict == "busy":  # lost a race with another submission
        raise _busy(session_id)
    if on_busy == "interrupt":
        for ahead in admission.ahead:
            await request_cancel(state, ahead)


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
