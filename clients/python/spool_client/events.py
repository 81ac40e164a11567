"""The event protocol of contract §3: one tagged union, encoded once by the worker.

Schema evolution: the API and the workers deploy separately, so a new field always
gets a default and a field's type never changes.
"""

from typing import Any, Literal

import msgspec

FinishReason = Literal["stop", "tool_calls", "length"]


class Usage(msgspec.Struct, kw_only=True):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class Cost(msgspec.Struct, kw_only=True):
    input: float
    output: float
    total: float
    currency: str = "USD"


class ErrorInfo(msgspec.Struct, kw_only=True):
    code: str
    message: str


class Event(msgspec.Struct, tag_field="type", kw_only=True):
    """Common fields. The publisher stamps `job_id`, `seq` and `ts` when it emits."""

    job_id: str = ""
    seq: int = 0
    ts: int = 0


class JobQueued(Event, tag="job.queued"):
    session_id: str
    model: str
    metadata: dict[str, str] = {}


class JobStarted(Event, tag="job.started"):
    attempt: int
    worker: str


class StepEvent(Event, kw_only=True):
    """An event of one agent-loop step; `chain_step` (0-based) is set for a chain's steps."""

    step: int
    chain_step: int | None = None


class StepStarted(StepEvent, tag="step.started"):
    pass


class TextDelta(StepEvent, tag="text.delta"):
    delta: str


class ThinkingDelta(StepEvent, tag="thinking.delta"):
    delta: str


class ToolCallDelta(StepEvent, tag="tool.call.delta"):
    """A piece of a tool call's arguments JSON text, as the model streams it."""

    call_id: str
    name: str = ""
    arguments_delta: str = ""


class ToolCall(StepEvent, tag="tool.call"):
    call_id: str
    name: str
    arguments: dict[str, Any]


class ToolApprovalRequested(StepEvent, tag="tool.approval_requested"):
    """The job waits for a human decision on this call (`expires_at`: ms since the epoch)."""

    call_id: str
    name: str
    arguments: dict[str, Any] = {}
    expires_at: int | None = None


class ToolApprovalResolved(StepEvent, tag="tool.approval_resolved"):
    """The decision; `arguments` are the call as it runs (edited, if the approver edited it)."""

    call_id: str
    approved: bool
    reason: str | None = None
    arguments: dict[str, Any] | None = None


class ToolResult(StepEvent, tag="tool.result"):
    call_id: str
    name: str
    output: str
    is_error: bool = False
    duration_ms: int = 0


class StepFinished(StepEvent, tag="step.finished"):
    finish_reason: FinishReason
    usage: Usage
    stop_reason: str | None = None  # the provider's own word, e.g. `end_turn`, `max_tokens`


class JobRetrying(Event, tag="job.retrying"):
    attempt: int
    reason: str


class JobCompleted(Event, tag="job.completed"):
    finish_reason: FinishReason
    output_text: str
    usage: Usage
    cost: Cost | None = None
    ttft_ms: int | None = None
    duration_ms: int = 0
    warnings: list[str] = []
    stop_reason: str | None = None  # the provider's raw stop reason of the last model call


class JobFailed(Event, tag="job.failed"):
    error: ErrorInfo
    usage: Usage
    output_text: str = ""
    cost: Cost | None = None


class JobCancelled(Event, tag="job.cancelled"):
    output_text: str
    usage: Usage
    cost: Cost | None = None


class SessionDeleted(Event, tag="session.deleted"):
    """The session was deleted; the response ends after this event."""


class SessionGap(Event, tag="session.gap"):
    requested: str
    first_available: str


AnyEvent = (
    JobQueued
    | JobStarted
    | StepStarted
    | TextDelta
    | ThinkingDelta
    | ToolCallDelta
    | ToolCall
    | ToolApprovalRequested
    | ToolApprovalResolved
    | ToolResult
    | StepFinished
    | JobRetrying
    | JobCompleted
    | JobFailed
    | JobCancelled
    | SessionDeleted
    | SessionGap
)

TERMINAL_TYPES: frozenset[str] = frozenset({"job.completed", "job.failed", "job.cancelled"})

encoder = msgspec.json.Encoder()
decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)


def event_type(event: Event) -> str:
    """The `type` tag of an event, e.g. `"text.delta"`."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
