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
    JobRetrying,
    SessionGap,
    StepFinished,
    TextDelta,
    ThinkingDelta,
    ToolCall,
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


class JobResult(msgspec.Struct, kw_only=True):
    """What `collect()` returns; partial (status `running`) inside `StreamInterrupted`."""

    session_id: str
    job_id: str | None = None
    status: str = "running"  # then completed | failed | cancelled
    text: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = []
    tool_results: list[ToolResult] = []
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

    @property
    def done(self) -> bool:
        return self.status != "running"


class Collector:
    """Folds a job's events into a `JobResult`."""

    def __init__(self, session_id: str, job_id: str | None) -> None:
        self.result = JobResult(session_id=session_id, job_id=job_id)
        self._started = time.monotonic()

    def feed(self, event: StreamEvent) -> None:
        r = self.result
        r.events += 1
        r.last_event_id = event.id or r.last_event_id
        typed = event.event
        if typed is not None and not _content(r, typed):
            _lifecycle(r, typed)
        if event.type == "text.delta" and r.first_token_ms is None:
            r.first_token_ms = (time.monotonic() - self._started) * 1000


def _content(r: JobResult, ev: AnyEvent) -> bool:
    match ev:
        case TextDelta():
            r.text += ev.delta
            r.chunks += 1
        case ThinkingDelta():
            r.thinking += ev.delta
        case ToolCall():
            r.tool_calls.append(ev)
        case ToolResult():
            r.tool_results.append(ev)
        case StepFinished():
            r.usage = r.usage + ev.usage
        case _:
            return False
    return True


def _lifecycle(r: JobResult, ev: AnyEvent) -> None:
    match ev:
        case JobRetrying():  # the job starts over: what it said so far is void
            r.text, r.thinking, r.chunks, r.usage = "", "", 0, Usage()
            r.tool_calls, r.tool_results = [], []
            r.retries += 1
        case JobCompleted():
            r.status, r.text, r.usage, r.cost = "completed", ev.output_text, ev.usage, ev.cost
            r.finish_reason, r.ttft_ms, r.duration_ms = ev.finish_reason, ev.ttft_ms, ev.duration_ms
            r.warnings = list(ev.warnings)
        case JobFailed():
            r.status, r.error, r.usage = "failed", ev.error, ev.usage
        case JobCancelled():
            r.status, r.text, r.usage = "cancelled", ev.output_text, ev.usage
        case SessionGap():
            r.gaps.append(ev)
        case _:
            pass
