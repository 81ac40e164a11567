"""Spool event streams made in process, for testing code that consumes them without a service.

`mock_stream(...)` yields the `StreamEvent`s a real job would produce (the same event
types and JSON, ids and `seq` in order, `usage` of the final event equal to the sum
over `step.finished`), so the code under test folds them with `collect_events` exactly
as `SpoolClient.collect` folds a real stream:

    result = await collect_events(mock_stream("Hello world"), on_text=print)

`mock_events(...)` returns the same events as a list, for synchronous tests.
"""

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from spool_client.events import (
    ErrorInfo,
    Event,
    FinishReason,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobQueued,
    JobStarted,
    StepFinished,
    StepStarted,
    TextDelta,
    ThinkingDelta,
    ToolApprovalRequested,
    ToolApprovalResolved,
    ToolCall,
    ToolCallDelta,
    ToolResult,
    Usage,
    encoder,
    event_type,
)
from spool_client.result import StreamEvent

_TOKEN = re.compile(r"\s*\S+\s*|\s+")
ToolCallSpec = Mapping[str, Any]  # {"name": ..., "arguments": {...}, "output": "..."}


def _pieces(text: str, size: int) -> list[str]:
    """`text` cut into chunks of `size` whitespace tokens; their concatenation is `text`."""
    tokens = _TOKEN.findall(text)
    return ["".join(tokens[i : i + size]) for i in range(0, len(tokens), size)]


class _Ended(Exception):
    """The scripted job stops early (it fails or is cancelled mid-stream)."""


class _Job:
    """Appends the typed events of one mock job, in order, counting tokens as it goes."""

    def __init__(self, chunk_size: int, input_tokens: int, stop_after: int | None) -> None:
        self.chunk_size = max(1, chunk_size)
        self.input_tokens = input_tokens
        self.stop_after = stop_after
        self.events: list[Event] = []
        self.text = ""
        self.step_tokens = 0
        self.usage = Usage()

    def deltas(self, step: int, text: str, *, thinking: bool = False) -> None:
        for piece in _pieces(text, self.chunk_size):
            if self.stop_after is not None and self.spent >= self.stop_after:
                raise _Ended
            if thinking:
                self.events.append(ThinkingDelta(step=step, delta=piece))
            else:
                self.events.append(TextDelta(step=step, delta=piece))
                self.text += piece
            self.step_tokens += len(piece.split())

    @property
    def spent(self) -> int:
        return self.usage.output_tokens + self.step_tokens

    def step_usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.step_tokens,
            total_tokens=self.input_tokens + self.step_tokens,
        )

    def finish_step(self, step: int, reason: FinishReason) -> None:
        usage = self.step_usage()
        self.usage, self.step_tokens = self.usage + usage, 0
        self.events.append(StepFinished(step=step, finish_reason=reason, usage=usage))

    def partial_usage(self) -> Usage:
        return self.usage + self.step_usage() if self.step_tokens else self.usage

    def tool_call(self, index: int, spec: ToolCallSpec, approval: bool | None) -> None:
        call_id, name = f"call_{index}", str(spec["name"])
        arguments = dict(spec.get("arguments", {}))
        text = json.dumps(arguments)
        for part in (text[: len(text) // 2], text[len(text) // 2 :]):
            self.events.append(
                ToolCallDelta(step=0, call_id=call_id, name=name, arguments_delta=part)
            )
        self.events.append(ToolCall(step=0, call_id=call_id, name=name, arguments=arguments))
        runs = True
        if approval is not None:
            expires = int(time.time() * 1000) + 3_600_000
            self.events.append(
                ToolApprovalRequested(
                    step=0, call_id=call_id, name=name, arguments=arguments, expires_at=expires
                )
            )
            runs, reason = approval, None if approval else "rejected"
            self.events.append(
                ToolApprovalResolved(
                    step=0, call_id=call_id, approved=runs, reason=reason, arguments=arguments
                )
            )
        output = str(spec.get("output", "ok")) if runs else "The call was rejected: rejected"
        self.events.append(
            ToolResult(step=0, call_id=call_id, name=name, output=output, is_error=not runs)
        )


def _script(
    job: _Job,
    text: str,
    thinking: str | None,
    tool_calls: Sequence[ToolCallSpec],
    approval: bool | None,
) -> None:
    step = 0
    job.events.append(StepStarted(step=0))
    job.deltas(0, thinking or "", thinking=True)
    if tool_calls:
        for i, spec in enumerate(tool_calls):
            job.tool_call(i, spec, approval)
        job.finish_step(0, "tool_calls")
        step = 1
        job.events.append(StepStarted(step=1))
    job.deltas(step, text)
    job.finish_step(step, "stop")


def mock_events(
    text: str = "Hello world",
    *,
    chunk_size: int = 1,
    thinking: str | None = None,
    tool_calls: Sequence[ToolCallSpec] = (),
    approval: bool | None = None,
    fail: bool | str = False,
    fail_after_tokens: int | None = None,
    cancel_after_tokens: int | None = None,
    input_tokens: int = 5,
    model: str = "mock",
    session_id: str = "ses-mock",
    job_id: str = "job-mock",
) -> list[StreamEvent]:
    """The events of one job, from `job.queued` to its terminal event.

    `chunk_size`: whitespace tokens per delta. `thinking`: streamed first as
    `thinking.delta`. `tool_calls`: `[{"name", "arguments", "output"}]` requested in
    step 0 (arguments streamed as two `tool.call.delta`s, then `tool.call`, then
    `tool.result`); the text follows in step 1. `approval`: None = no approval asked,
    True / False = each call is approved / rejected (`tool.approval_requested` and
    `tool.approval_resolved` before its result). `fail` (True or a message) ends the job
    with `job.failed` after `fail_after_tokens` output tokens (default: all of them);
    `cancel_after_tokens` ends it with `job.cancelled` there.
    """
    failing = bool(fail) or fail_after_tokens is not None
    stop_after = fail_after_tokens if failing else cancel_after_tokens
    job = _Job(chunk_size, input_tokens, stop_after)
    job.events += [
        JobQueued(session_id=session_id, model=model),
        JobStarted(attempt=1, worker="mock"),
    ]
    try:
        _script(job, text, thinking, tool_calls, approval)
        ended = failing or cancel_after_tokens is not None
    except _Ended:
        ended = True
    job.events.append(_final(job, failing, fail, ended))
    return _stamped(job.events, job_id)


def _final(job: _Job, failing: bool, fail: bool | str, ended: bool) -> Event:
    usage = job.partial_usage()
    if failing:
        message = fail if isinstance(fail, str) else "simulated failure"
        error = ErrorInfo(code="provider_error", message=message)
        return JobFailed(error=error, usage=usage, output_text=job.text)
    if ended:
        return JobCancelled(output_text=job.text, usage=usage)
    return JobCompleted(finish_reason="stop", output_text=job.text, usage=usage, ttft_ms=0)


def _stamped(events: list[Event], job_id: str) -> list[StreamEvent]:
    base = int(time.time() * 1000)
    stamped = []
    for seq, event in enumerate(events):
        event.job_id, event.seq, event.ts = job_id, seq, base + seq
        raw = encoder.encode(event).decode()
        stamped.append(StreamEvent.parse(f"{base}-{seq}", event_type(event), raw))
    return stamped


async def mock_stream(
    text: str = "Hello world", *, delay: float = 0.0, **options: Any
) -> AsyncIterator[StreamEvent]:
    """`mock_events(text, **options)` as an async stream, `delay` seconds between events."""
    for event in mock_events(text, **options):
        if delay:
            await asyncio.sleep(delay)
        yield event
