"""Events as the client sees them, and `JobResult`: one job's stream folded into a result.

Folding is a pure function of the events (plus the client's clock for time to first
token), kept apart from the transport so it can be tested without a network.
"""

import json
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from spool_client.events import (
    AnyEvent,
    Cost,
    ErrorInfo,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobQueued,
    JobRetrying,
    SessionDeleted,
    SessionGap,
    StepFinished,
    TextDelta,
    ThinkingDelta,
    ToolApprovalRequested,
    ToolApprovalResolved,
    ToolCall,
    ToolCallDelta,
    ToolResult,
    Usage,
    decoder,
)


@dataclass(frozen=True)
class StreamEvent:
    """One SSE event: its stream id, its type, and its JSON data (`raw` as received)."""

    id: str | None
    type: str
    data: dict[str, Any]
    raw: str = field(repr=False)

    @classmethod
    def parse(cls, id: str | None, type: str, raw: str) -> "StreamEvent":
        return cls(id=id, type=type, data=json.loads(raw), raw=raw)

    @property
    def event(self) -> AnyEvent | None:
        """The typed event, or None for a type this client does not know (a newer server)."""
        try:
            return decoder.decode(self.raw)
        except msgspec.ValidationError:
            return None

    @property
    def chain_step(self) -> int | None:
        """The chain step (0-based) this event belongs to, for a job with a `chain`."""
        step = self.data.get("chain_step")
        return step if isinstance(step, int) else None


class JobResult(msgspec.Struct, kw_only=True):
    """What `collect()` returns; partial (status `running`) inside `StreamInterrupted`."""

    session_id: str
    job_id: str | None = None
    status: str = "running"  # then completed | failed | cancelled
    text: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = []
    tool_arguments: dict[str, str] = {}  # call_id -> arguments JSON text (tool.call.delta)
    tool_results: list[ToolResult] = []
    approvals_requested: list[ToolApprovalRequested] = []
    approvals: list[ToolApprovalResolved] = []
    usage: Usage = msgspec.field(default_factory=Usage)
    cost: Cost | None = None
    finish_reason: str | None = None
    error: ErrorInfo | None = None
    duration_ms: int | None = None  # the service's, from job.completed
    ttft_ms: int | None = None  # the service's time to first token
    first_token_ms: float | None = None  # this client's, from collect() to the first text
    chunks: int = 0  # text.delta events of the final attempt
    events: int = 0  # events received, all kinds
    retries: int = 0  # job.retrying events seen
    gaps: list[SessionGap] = []  # session.gap: events were lost before the cursor
    last_event_id: str | None = None
    warnings: list[str] = []
    chain_step: int | None = None  # the chain step being streamed (jobs with a `chain`)
    chain_outputs: list[str] = []  # text of each chain step; `text` is the current step's
    session_deleted: bool = False  # session.deleted arrived (the job ends as cancelled)

    @property
    def done(self) -> bool:
        return self.status != "running"

    @property
    def pending_approvals(self) -> list[ToolApprovalRequested]:
        """Approval requests without a decision yet."""
        decided = {a.call_id for a in self.approvals}
        return [a for a in self.approvals_requested if a.call_id not in decided]


class Collector:
    """Folds a job's events into a `JobResult`.

    Events of a type this client does not know (a newer service) are counted and
    otherwise ignored: schema evolution never breaks a client.
    """

    def __init__(self, session_id: str = "", job_id: str | None = None) -> None:
        self.result = JobResult(session_id=session_id, job_id=job_id)
        self._started = time.monotonic()

    def feed(self, event: StreamEvent) -> None:
        r = self.result
        r.events += 1
        r.last_event_id = event.id or r.last_event_id
        if r.job_id is None and isinstance(event.data.get("job_id"), str):
            r.job_id = event.data["job_id"]
        _enter_chain_step(r, event.chain_step)
        typed = event.event
        if typed is not None and not _content(r, typed) and not _tools(r, typed):
            _lifecycle(r, typed)
        if event.type == "text.delta" and r.first_token_ms is None:
            r.first_token_ms = (time.monotonic() - self._started) * 1000


def _enter_chain_step(r: JobResult, step: int | None) -> None:
    """A new chain step starts a new `text`; a step seen again (after a retry) restarts."""
    if step is None or step == r.chain_step:
        return
    r.chain_step = step
    del r.chain_outputs[step:]
    r.chain_outputs.extend([""] * (step + 1 - len(r.chain_outputs)))
    r.text = ""


def _content(r: JobResult, ev: AnyEvent) -> bool:
    match ev:
        case TextDelta():
            r.text += ev.delta
            r.chunks += 1
            if r.chain_step is not None:
                r.chain_outputs[r.chain_step] += ev.delta
        case ThinkingDelta():
            r.thinking += ev.delta
        case StepFinished():
            r.usage = r.usage + ev.usage
        case JobQueued():
            r.session_id = r.session_id or ev.session_id
        case _:
            return False
    return True


def _tools(r: JobResult, ev: AnyEvent) -> bool:
    match ev:
        case ToolCallDelta():
            r.tool_arguments[ev.call_id] = r.tool_arguments.get(ev.call_id, "") + ev.arguments_delta
        case ToolCall():
            r.tool_calls.append(ev)
        case ToolApprovalRequested():
            r.approvals_requested.append(ev)
        case ToolApprovalResolved():
            r.approvals.append(ev)
        case ToolResult():
            r.tool_results.append(ev)
        case _:
            return False
    return True


def _lifecycle(r: JobResult, ev: AnyEvent) -> None:
    match ev:
        case JobRetrying():  # the job starts over: what it said so far is void
            r.text, r.thinking, r.chunks, r.usage = "", "", 0, Usage()
            r.tool_calls, r.tool_results, r.tool_arguments = [], [], {}
            r.chain_step = None  # chain steps already done are kept in chain_outputs
            r.retries += 1
        case JobCompleted():
            r.status, r.text, r.usage, r.cost = "completed", ev.output_text, ev.usage, ev.cost
            r.finish_reason, r.ttft_ms, r.duration_ms = ev.finish_reason, ev.ttft_ms, ev.duration_ms
            r.warnings = list(ev.warnings)
        case JobFailed():
            r.status, r.error, r.usage, r.cost = "failed", ev.error, ev.usage, ev.cost
            r.text = ev.output_text or r.text
        case JobCancelled():
            r.status, r.text, r.usage, r.cost = "cancelled", ev.output_text, ev.usage, ev.cost
        case SessionDeleted():  # deleting a session cancels its jobs; the stream ends here
            r.session_deleted = True
            r.status = "cancelled" if r.status == "running" else r.status
        case SessionGap():
            r.gaps.append(ev)
        case _:
            pass
