"""Turning a `POST /v1/jobs` body into a queued job: validate, claim the session, enqueue.

When the streams live on the main Redis (the default), everything after validation is one
script call (`shared/submit.py`); with a separate stream Redis it is four round trips:
limits, record, `job.queued`, the session's FIFO (each refusal after the first write is
undone: the job ends `job.failed` and stops counting).
"""

import contextlib
from datetime import UTC, datetime
from typing import NamedTuple

import msgspec

from spool.api import metrics
from spool.api.cancel import request_cancel
from spool.api.errors import ApiError, decode_json
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
from spool.shared.keys import TOMBSTONE_S, SessionRef
from spool.shared.settings import Settings
from spool.shared.store import SessionDeleted
from spool.shared.streams import Outgoing, StreamClosed
from spool.shared.submit import Submitter
from spool_client.events import ErrorInfo, JobFailed, JobQueued, Usage, encoder

ACTIVE_RETRY_S = 5

_decoder = msgspec.json.Decoder(JobRequest)


def decode_request(body: bytes) -> JobRequest:
    return decode_json(_decoder, body)


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


class Acceptance(NamedTuple):
    """A job accepted: the response, and its `job.queued` stream id (None when the response
    is an earlier request's, for a repeated `Idempotency-Key`). When one script call
    submitted it: `born`, the stream's incarnation, and `queued_data`, the `job.queued`
    event appended, which were the stream's newest entry then (`Hub.follow`'s `start`)."""

    accepted: Accepted
    queued_id: bytes | None = None
    born: bytes | None = None
    queued_data: bytes | None = None


async def submit_job(state: AppState, tenant: str, req: JobRequest) -> Acceptance:
    session_id = req.session_id or new_session_id()
    spec = build_spec(req, agents_of(state), state.settings, tenant, session_id)
    await check_tools(
        state.tool_names, {*spec.tools, *(t for step in spec.chain for t in step.tools)}
    )
    session = SessionRef(tenant, session_id)
    if state.submitter is not None:
        return await _submit_at_once(state.submitter, state, session, spec, req)
    if req.on_busy == "reject" and await state.sessions.busy(session):
        raise _busy(session_id)  # the common case, before anything is written
    if not await state.limits.admit(tenant, spec.job_id):
        raise _too_many_active(state)
    try:
        return await _submit(state, session, spec, req)
    except BaseException:  # not queued (or not surely): it stops counting at once
        with contextlib.suppress(Exception):
            await state.limits.ended(tenant, spec.job_id)
        raise


def _record(session: SessionRef, spec: JobSpec) -> JobRecord:
    return JobRecord(
        job_id=spec.job_id,
        session_id=session.session_id,
        tenant=session.tenant,
        status="queued",
        model=spec.model,
        created_at=datetime.now(UTC),
        spec=spec,
    )


def _queued(session: SessionRef, spec: JobSpec, req: JobRequest) -> Outgoing:
    queued = JobQueued(
        job_id=spec.job_id,
        seq=0,
        ts=now_ms(),
        session_id=session.session_id,
        model=spec.model,
        metadata=req.metadata,
    )
    return Outgoing("job.queued", 0, encoder.encode(queued))


def _accepted(
    session: SessionRef,
    job_id: str,
    queued_id: bytes | None,
    born: bytes | None = None,
    queued_data: bytes | None = None,
) -> Acceptance:
    metrics.JOBS_SUBMITTED.inc()
    session_id = session.session_id
    accepted = Accepted(
        job_id=job_id,
        session_id=session_id,
        status="queued",
        events_url=f"/v1/sessions/{session_id}/events?job_id={job_id}",
    )
    return Acceptance(accepted, queued_id, born, queued_data)


async def _submit_at_once(
    submitter: Submitter, state: AppState, session: SessionRef, spec: JobSpec, req: JobRequest
) -> Acceptance:
    """Everything in one script call; every refusal comes before anything is written."""
    mode = "reject" if req.on_busy == "reject" else "enqueue"
    queued = _queued(session, spec, req)
    done = await submitter.submit(session, _record(session, spec), queued, mode)
    if done.verdict == "deleted":
        raise _deleted(session.session_id)
    if done.verdict == "busy":
        raise _busy(session.session_id)
    if done.verdict == "limit":
        raise _too_many_active(state)
    if req.on_busy == "interrupt":
        for ahead in done.ahead:
            await request_cancel(state, session, ahead)
    return _accepted(session, spec.job_id, done.queued_id, done.born, queued.data)


async def _submit(
    state: AppState, session: SessionRef, spec: JobSpec, req: JobRequest
) -> Acceptance:
    session_id, job_id = session.session_id, spec.job_id
    try:
        job_count = await state.store.create(_record(session, spec))
    except SessionDeleted:
        raise _deleted(session_id) from None
    try:
        ids = await state.writer.append(session, job_id, 0, [_queued(session, spec, req)])
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
    return _accepted(session, job_id, ids[0] if ids else None)


def _too_many_active(state: AppState) -> ApiError:
    limit = state.settings.tenant_max_active_jobs
    return ApiError(
        429,
        "too_many_active_jobs",
        f"This tenant has {limit} jobs queued or running (SPOOL_TENANT_MAX_ACTIVE_JOBS).",
        {"Retry-After": str(ACTIVE_RETRY_S)},
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
