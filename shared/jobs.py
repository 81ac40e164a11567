"""Job schemas: the public request (contract §2), the spec a worker runs, and the record."""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from spool.shared.keys import SessionRef
from spool_client.events import Cost, ErrorInfo, Usage

# `\Z`, not `$`: `$` also matches before a trailing newline
SESSION_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}\Z"
SessionId = Annotated[str, msgspec.Meta(pattern=SESSION_ID_PATTERN)]
ModelName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]+(:.+)?\Z", max_length=200)]
Role = Literal["user", "assistant"]
OnBusy = Literal["enqueue", "reject", "interrupt"]
JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
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


class JobRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /v1/jobs` body. Unknown fields are refused so that a typo is a 422, not ignored."""

    input: (
        Annotated[str, msgspec.Meta(min_length=1)]
        | Annotated[list[Message], msgspec.Meta(min_length=1)]
    )
    session_id: SessionId | None = None
    agent: str | None = None
    model: ModelName | None = None
    system: str | None = None
    tools: list[str] | None = None
    parameters: dict[str, Any] = {}
    max_steps: Annotated[int, msgspec.Meta(ge=1, le=64)] = 8
    metadata: dict[str, str] = {}
    on_busy: OnBusy = "enqueue"
    history: bool = True

    def messages(self) -> list[Message]:
        if isinstance(self.input, str):
            return [Message(role="user", content=self.input)]
        return list(self.input)


class SimulatedToolCall(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    arguments: dict[str, Any] = {}


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

    @classmethod
    def of(cls, rec: JobRecord) -> "JobView":
        return cls(
            job_id=rec.job_id,
            session_id=rec.session_id,
            status=rec.status,
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
        )
