"""Turning a `POST /v1/jobs` body into a queued job: validate, claim the session, enqueue."""

from datetime import UTC, datetime

import msgspec

from api.errors import ApiError
from api.state import AppState
from shared.agents import BUILTIN_PROVIDERS, Agent, AgentsFile, AgentsFileError, load_agents
from shared.events import ErrorInfo, JobFailed, JobQueued, Usage, encoder
from shared.ids import new_job_id, new_session_id, now_ms
from shared.jobs import JobRecord, JobRequest, JobSpec, SimulatedParameters
from shared.streams import Outgoing

DEFAULT_MAX_STEPS = 8

_decoder = msgspec.json.Decoder(JobRequest)


class Accepted(msgspec.Struct):
    job_id: str
    session_id: str
    status: str
    events_url: str


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
    owner = await state.store.claim_session(session_id, tenant)
    if owner.tenant != tenant:
        raise ApiError(404, "session_not_found", f"No session {session_id!r}.")
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
        await state.queue.enqueue_job("run_job", job_id, _job_id=job_id)
    except Exception:
        await _fail_unqueued(state, session_id, job_id)
        raise
    return Accepted(
        job_id=job_id,
        session_id=session_id,
        status="queued",
        events_url=f"/v1/sessions/{session_id}/events?job_id={job_id}",
    )


async def _fail_unqueued(state: AppState, session_id: str, job_id: str) -> None:
    """The job is in the stream but not in the queue: end it, so no follower waits forever."""
    error = ErrorInfo(code="enqueue_failed", message="The job could not be queued.")
    failed = JobFailed(job_id=job_id, seq=1, ts=now_ms(), error=error, usage=Usage())
    try:
        await state.writer.append(
            session_id, job_id, 0, [Outgoing("job.failed", 1, encoder.encode(failed))]
        )
        await state.store.update(job_id, status="failed", error=error)
    except Exception:  # Redis is away: the caller gets a 503 all the same
        return
