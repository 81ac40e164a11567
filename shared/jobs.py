"""Job schemas: the public request (contract §2), the spec a worker runs, and the record."""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from spool.shared.keys import SessionRef
from spool.shared.pricing import TokenCounts
from spool_client.events import Cost, ErrorInfo, Usage

# `\Z`, not `$`: `$` also matches before a trailing newline
SESSION_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}\Z"
SessionId = Annotated[str, msgspec.Meta(pattern=SESSION_ID_PATTERN)]
ModelName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]+(:.+)?\Z", max_length=200)]
Role = Literal["user", "assistant"]
OnBusy = Literal["enqueue", "reject", "interrupt"]
JobStatus = Literal["queued", "running", "awaiting_approval", "completed", "failed", "cancelled"]
FINISHED_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


class ToolCallPart(msgspec.Struct, forbid_unknown_fields=True):
    """A tool call the assistant made (kept in the conversation for the next model call)."""

    call_id: str
    name: str
    arguments: dict[str, Any] = {}


class ToolResultPart(msgspec.Struct, forbid_unknown_fields=True):
    """The answer to one tool call, sent back to the model in a user turn."""

    call_id: str
    name: str
    output: str
    is_error: bool = False


class ThinkingPart(msgspec.Struct, forbid_unknown_fields=True):
    """A reasoning block; `signature` is the provider's proof needed to send it back."""

    text: str
    signature: str = ""


class Message(msgspec.Struct, forbid_unknown_fields=True):
    """One conversation turn. Plain turns are `{role, content}`; the agent loop adds the
    assistant's tool calls (and thinking) and the user-side tool results."""

    role: Role
    content: str
    tool_calls: list[ToolCallPart] = []
    tool_results: list[ToolResultPart] = []
    thinking: list[ThinkingPart] = []


MAX_CHAIN_STEPS = 8
MAX_TIMEOUT_S = 7 * 24 * 3600  # a job's whole-job deadline is at most a week


class ChainStep(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One model call of a chain; what it leaves out comes from the job (contract §8)."""

    template: Annotated[str, msgspec.Meta(min_length=1)]
    model: ModelName | None = None
    system: str | None = None
    tools: list[str] | None = None
    parameters: dict[str, Any] = {}


class JobRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /v1/jobs` body. Unknown fields are refused so that a typo is a 422, not ignored.

    "Not given" is None throughout: an agent's value fills only what the request leaves out.
    Exactly one of `input`, `template` and `chain` says what the job asks.
    """

    input: (
        Annotated[str, msgspec.Meta(min_length=1)]
        | Annotated[list[Message], msgspec.Meta(min_length=1)]
        | None
    ) = None
    session_id: SessionId | None = None
    agent: str | None = None
    model: ModelName | None = None
    system: str | None = None
    tools: list[str] | None = None
    parameters: dict[str, Any] = {}
    max_steps: Annotated[int, msgspec.Meta(ge=1, le=64)] | None = None
    metadata: dict[str, str] = {}
    on_busy: OnBusy = "enqueue"
    history: bool = True
    require_approval: bool | list[str] | None = None
    template: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    variables: dict[str, Any] = {}
    chain: (
        Annotated[list[ChainStep], msgspec.Meta(min_length=1, max_length=MAX_CHAIN_STEPS)] | None
    ) = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_TIMEOUT_S)] | None = None

    def messages(self) -> list[Message]:
        if self.input is None:
            return []
        if isinstance(self.input, str):
            return [Message(role="user", content=self.input)]
        return list(self.input)


class SimulatedToolCall(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    arguments: dict[str, Any] = {}


class ProviderParameters(msgspec.Struct, kw_only=True):
    """The `parameters` the provider adapters read or pass on, typed so that a wrong type
    is a 422 at submit rather than a failure in the worker; other keys pass through."""

    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    reasoning_effort: str | None = None
    metadata: dict[str, Any] | None = None
    thinking: bool | int | dict[str, Any] | None = None
    stream: bool | None = None


class SimulatedParameters(msgspec.Struct, kw_only=True):
    """`parameters` of the `simulated` model (contract §6); other keys are ignored."""

    text: str | None = None
    ttft_ms: Annotated[float, msgspec.Meta(ge=0, le=600_000)] = 150
    tokens_per_second: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = 40
    chunk_tokens: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1
    thinking: str | None = None
    tool_calls: list[SimulatedToolCall] = []
    fail_after_tokens: Annotated[int, msgspec.Meta(ge=0)] | None = None


MAX_COALESCE_MS = 1000


def coalesce_ms(parameters: dict[str, Any], default: float) -> float:
    """The job's text-delta coalescing window: `parameters.coalesce_ms`, else the default."""
    value = parameters.get("coalesce_ms", default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("coalesce_ms must be a number of milliseconds")
    if not 0 <= value <= MAX_COALESCE_MS:
        raise ValueError(f"coalesce_ms must be between 0 and {MAX_COALESCE_MS}")
    return float(value)


def behind_ms(parameters: dict[str, Any], default: float) -> float:
    """How long a delta waits for its append before the next ones merge into it (adaptive
    coalescing): `parameters.behind_ms`, else the default; negative: never."""
    value = parameters.get("behind_ms", default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("behind_ms must be a number of milliseconds")
    return float(value)


class ChainStepSpec(msgspec.Struct, kw_only=True):
    """A chain step with the job's model, system, tools and parameters filled in."""

    template: str
    model: str
    system: str | None = None
    tools: list[str] = []
    parameters: dict[str, Any] = {}


class PendingApproval(msgspec.Struct, kw_only=True):
    """A tool call waiting for a human decision (`GET /v1/jobs/{id}` lists them)."""

    call_id: str
    name: str
    arguments: dict[str, Any] = {}
    expires_at: int = 0  # ms since the epoch


class Decision(msgspec.Struct, kw_only=True):
    """A human's decision on one pending call (`POST /v1/jobs/{id}/approvals/{call_id}`)."""

    approved: bool
    reason: str | None = None
    arguments: dict[str, Any] | None = None  # an edited call


class ChainStepDone(msgspec.Struct, kw_only=True):
    """A finished chain step, kept in the job record so that a re-run does not repeat it."""

    input: str
    output_text: str
    usage: Usage
    cost: Cost | None = None
    stop_reason: str | None = None
    finish_reason: str = "stop"


class LoopState(msgspec.Struct, kw_only=True):
    """An agent loop parked while tool calls wait for approval: everything needed for any
    worker to continue it (the job holds no worker slot meanwhile)."""

    continuation: int  # how many times this job has parked; names the continuation's arq job
    step: int
    chain_step: int | None = None
    turns: list[Message] = []  # this job's turns so far (the assistant's calls last)
    text: str = ""  # the output text so far (of the current chain step)
    usage: Usage = msgspec.field(default_factory=Usage)
    tokens: TokenCounts = msgspec.field(default_factory=TokenCounts)
    calls: list[ToolCallPart] = []  # the parked step's calls, in the model's order
    results: list[ToolResultPart] = []  # the results of the calls that needed no approval
    pending: list[PendingApproval] = []
    first_delta_ms: int | None = None
    warnings: list[str] = []
    parked_at_ms: int = 0


class JobSpec(msgspec.Struct, kw_only=True):
    """What a worker runs: the request with every default resolved by the API."""

    job_id: str
    session_id: str
    tenant: str
    model: str
    messages: list[Message]
    system: str | None = None
    tools: list[str] = []
    parameters: dict[str, Any] = {}
    max_steps: int = 8
    metadata: dict[str, str] = {}
    history: bool = True
    agent: str | None = None
    on_busy: OnBusy = "enqueue"
    chain: list[ChainStepSpec] = []
    variables: dict[str, Any] = {}
    require_approval: bool | list[str] = False
    approval_timeout_s: float = 3600.0
    timeout_s: float | None = None  # whole-job deadline; None: the worker's SPOOL_JOB_TIMEOUT_S

    def needs_approval(self, tool: str) -> bool:
        if isinstance(self.require_approval, bool):
            return self.require_approval
        return tool in self.require_approval

    @property
    def session(self) -> SessionRef:
        return SessionRef(self.tenant, self.session_id)


class JobRecord(msgspec.Struct, kw_only=True):
    """The job's Redis hash, one JSON value per field (see `shared.store`)."""

    job_id: str
    session_id: str
    tenant: str
    status: JobStatus
    model: str
    created_at: datetime
    spec: JobSpec
    attempt: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output_text: str | None = None
    usage: Usage | None = None
    cost: Cost | None = None
    error: ErrorInfo | None = None
    ttft_ms: int | None = None
    duration_ms: int | None = None
    warnings: list[str] = []
    cancel_requested: bool = False
    interrupted: str | None = None  # why the last attempt ended without finishing, if it did
    stop_reason: str | None = None
    chain_done: list[ChainStepDone] = []  # finished chain steps, in order
    parked: LoopState | None = None  # the loop waiting for approvals (kept while it continues)
    resumed: int = 0  # the last parking a continuation took over (`shared.approvals`)
    deadline_ms: int | None = None  # the whole-job deadline, moved on by time spent parked

    @property
    def waiting(self) -> bool:
        """Parked on tool approvals and not yet taken up again. True from the moment the
        state is saved (before `tool.approval_requested` goes out), while `status` turns
        `awaiting_approval` a moment later, once the worker has let the job go."""
        parked = self.parked
        return (
            parked is not None
            and self.resumed < parked.continuation
            and self.status in ("running", "awaiting_approval")
        )

    @property
    def session(self) -> SessionRef:
        return SessionRef(self.tenant, self.session_id)


class JobView(msgspec.Struct, kw_only=True):
    """`GET /v1/jobs/{id}`."""

    job_id: str
    session_id: str
    status: JobStatus
    attempt: int
    model: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    output_text: str | None
    usage: Usage | None
    cost: Cost | None
    error: ErrorInfo | None
    ttft_ms: int | None = None
    duration_ms: int | None = None
    metadata: dict[str, str] = {}
    pending_approvals: list[PendingApproval] = []

    @classmethod
    def of(cls, rec: JobRecord, pending: list[PendingApproval] | None = None) -> "JobView":
        return cls(
            job_id=rec.job_id,
            session_id=rec.session_id,
            status="awaiting_approval" if rec.waiting else rec.status,
            attempt=rec.attempt,
            model=rec.model,
            created_at=rec.created_at,
            started_at=rec.started_at,
            finished_at=rec.finished_at,
            output_text=rec.output_text,
            usage=rec.usage,
            cost=rec.cost,
            error=rec.error,
            ttft_ms=rec.ttft_ms,
            duration_ms=rec.duration_ms,
            metadata=rec.spec.metadata,
            pending_approvals=pending or [],
        )
