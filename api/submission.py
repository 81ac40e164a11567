"""Turning a `POST /v1/jobs` body into a queued job: validate, claim the session, enqueue."""

from datetime import UTC, datetime

import msgspec

from spool.api import metrics
from spool.api.cancel import request_cancel
from spool.api.errors import ApiError
from spool.api.idempotency import Accepted
from spool.api.state import AppState
from spool.shared.agents import BUILTIN_PROVIDERS, Agent, AgentsFile, AgentsFileError, load_agents
from spool.shared.ids import new_job_id, new_session_id, now_ms
from spool.shared.jobs import JobRecord, JobRequest, JobSpec, SimulatedParameters, coalesce_ms
from spool.shared.keys import TOMBSTONE_S, SessionRef
from spool.shared.store import SessionDeleted
from spool.shared.streams import Outgoing, StreamClosed
from spool_client.events import ErrorInfo, JobFailed, JobQueued, Usage, encoder

DEFAULT_MAX_STEPS = 8

_decoder = msgspec.json.Decoder(JobRequest)


def decode_request(body: bytes) -> JobRequest:
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_field", str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}") from exc


def validate_model(
    model: str, parameters: dict[str, object], providers: frozenset[str] = BUILTIN_PROVIDERS
) -> None:
    provider, _, name = model.partition(":")
    if provider not in providers:
        known = ", ".join(sorted(providers))
        raise ApiError(422, "unknown_model", f"Unknown provider {provider!r} (known: {known}).")
    if provider != "simulated" and not name:
        raise ApiError(422, "unknown_model", f"Say which model: {provider}:<model>.")
    try:
        coalesce_ms(parameters, 0)
    except ValueError as exc:
        raise ApiError(422, "invalid_field", f"parameters: {exc}") from exc
    if provider == "simulated":
        try:
            msgspec.convert(parameters, SimulatedParameters)
        except msgspec.ValidationError as exc:
            raise ApiError(422, "invalid_field", f"parameters: {exc}") from exc


def agents_of(state: AppState) -> AgentsFile:
    try:
        return load_agents(state.settings.agents_file)
    except AgentsFileError as exc:
        raise ApiError(500, "agents_file_invalid", str(exc)) from exc


def apply_agent(req: JobRequest, agents: AgentsFile, default_model: str) -> JobRequest:
    """The request with the named agent's model, system, tools, parameters and max_steps
    filling what the request leaves out (request parameters win key by key)."""
    agent = Agent()
    if req.agent is not None:
        if req.agent not in agents.agents:
            known = ", ".join(sorted(agents.agents)) or "none"
            raise ApiError(422, "unknown_agent", f"No agent {req.agent!r} (known: {known}).")
        agent = agents.agents[req.agent]
    max_steps = req.max_steps
    if max_steps == DEFAULT_MAX_STEPS and agent.max_steps is not None:
        max_steps = agent.max_steps
    return msgspec.structs.replace(
        req,
        model=req.model or agent.model or default_model,
        system=req.system if req.system is not None else agent.system,
        tools=req.tools if req.tools is not None else agent.tools,
        parameters={**agent.parameters, **req.parameters},
        max_steps=max_steps,
    )


async def submit_job(state: AppState, tenant: str, req: JobRequest) -> Accepted:
    agents = agents_of(state)
    req = apply_agent(req, agents, state.settings.default_model)
    model = req.model or state.settings.default_model
    validate_model(model, req.parameters, agents.providers())
    session_id = req.session_id or new_session_id()
    session = SessionRef(tenant, session_id)
    if req.on_busy == "reject" and await state.sessions.busy(session):
        raise _busy(session_id)  # the common case, before anything is written
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
    try:
        job_count = await state.store.create(
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
    except SessionDeleted:
        raise _deleted(session_id) from None
    queued = JobQueued(
        job_id=job_id,
        seq=0,
        ts=now_ms(),
        session_id=session_id,
        model=model,
        metadata=req.metadata,
    )
    try:
        await state.writer.append(
            session, job_id, 0, [Outgoing("job.queued", 0, encoder.encode(queued))]
        )
    except StreamClosed:  # deleted since the record was written
        raise _deleted(session_id) from None
    try:
        await _admit(state, session, job_id, req.on_busy, job_count)
    except ApiError as exc:
        await _end_unqueued(state, session, job_id, ErrorInfo(code=exc.code, message=exc.message))
        raise
    except Exception:
        error = ErrorInfo(code="enqueue_failed", message="The job could not be queued.")
        await _end_unqueued(state, session, job_id, error)
        raise
    metrics.JOBS_SUBMITTED.inc()
    return Accepted(
        job_id=job_id,
        session_id=session_id,
        status="queued",
        events_url=f"/v1/sessions/{session_id}/events?job_id={job_id}",
    )


def _busy(session_id: str) -> ApiError:
    return ApiError(409, "session_busy", f"Session {session_id!r} has a job running.")


def _deleted(session_id: str) -> ApiError:
    return ApiError(
        409,
        "session_deleted",
        f"Session {session_id!r} was just deleted; its id can be used again shortly.",
        {"Retry-After": str(TOMBSTONE_S)},
    )


async def _admit(
    state: AppState, session: SessionRef, job_id: str, on_busy: str, job_count: int
) -> None:
    """Place the job in its session's FIFO (which enqueues it if it is first in line)."""
    admission = await state.sessions.admit(
        session, job_id, "reject" if on_busy == "reject" else "enqueue"
    )
    if admission.verdict == "busy":  # lost a race with another submission
        raise _busy(session.session_id)
    if admission.verdict == "deleted":
        raise _deleted(session.session_id)
    if admission.verdict == "run" and job_count > 1:  # an idle session turned live
        await state.store.keep_index(session, None)
    if on_busy == "interrupt":
        for ahead in admission.ahead:
            await request_cancel(state, session, ahead)


async def _end_unqueued(
    state: AppState, session: SessionRef, job_id: str, error: ErrorInfo
) -> None:
    """The job is in the stream but will not run: end it, so no follower waits forever."""
    failed = JobFailed(job_id=job_id, seq=1, ts=now_ms(), error=error, usage=Usage())
    try:
        await state.writer.append(
            session, job_id, 0, [Outgoing("job.failed", 1, encoder.encode(failed))]
        )
        await state.store.update(session, job_id, status="failed", error=error)
        await state.sessions.advance(session, job_id)  # settles the session's lifetime
    except Exception:  # Redis is away (or the session deleted): the caller gets its error
        return
    metrics.JOBS_FINISHED.labels("failed").inc()
