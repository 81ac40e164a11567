"""Reading a job's events into a `JobResult`, with the caller's callbacks.

The same function folds a real stream (`SpoolClient.collect`) and an in-process one
(`spool_client.testing.mock_stream`), so code tested against a mock behaves the same
against the service.
"""

import inspect
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass

from spool_client.errors import JobCancelledError, JobFailedError, StreamInterrupted
from spool_client.result import Collector, JobResult, StreamEvent

# A callback may be a plain function or a coroutine function; its return value is ignored.
OnEvent = Callable[[StreamEvent], Awaitable[object] | object]
OnText = Callable[[str], Awaitable[object] | object]
OnComplete = Callable[[JobResult], Awaitable[object] | object]


@dataclass(frozen=True)
class Callbacks:
    """`on_event` for every event; `on_text` / `on_thinking` with each delta's text;
    `on_complete` once with the final result when the job ends (completed, failed or
    cancelled), before `raise_on_failure` raises."""

    on_event: OnEvent | None = None
    on_text: OnText | None = None
    on_thinking: OnText | None = None
    on_complete: OnComplete | None = None


async def _call(callback: Callable[..., object] | None, value: object) -> None:
    if callback is None:
        return
    outcome = callback(value)
    if inspect.isawaitable(outcome):
        await outcome


async def _dispatch(callbacks: Callbacks, event: StreamEvent) -> None:
    if event.type == "text.delta":
        await _call(callbacks.on_text, event.data.get("delta", ""))
    elif event.type == "thinking.delta":
        await _call(callbacks.on_thinking, event.data.get("delta", ""))
    await _call(callbacks.on_event, event)


def check(result: JobResult) -> JobResult:
    """`result`, or `JobFailedError` / `JobCancelledError` carrying it if the job failed."""
    if result.status == "failed":
        raise JobFailedError(result)
    if result.status == "cancelled":
        raise JobCancelledError(result)
    return result


async def collect_events(
    events: AsyncIterable[StreamEvent],
    *,
    session_id: str = "",
    job_id: str | None = None,
    on_event: OnEvent | None = None,
    on_text: OnText | None = None,
    on_thinking: OnText | None = None,
    on_complete: OnComplete | None = None,
    raise_on_failure: bool = False,
) -> JobResult:
    """Fold `events` into a `JobResult`, calling the callbacks as they arrive.

    `on_event(event)` for every event, `on_text(delta)` / `on_thinking(delta)` per
    delta, `on_complete(result)` once when the job ends (completed, failed or
    cancelled); each may be a plain or a coroutine function.

    On `StreamInterrupted` the exception's `partial` holds what was collected. With
    `raise_on_failure`, a failed or cancelled job raises `JobFailedError` /
    `JobCancelledError` whose `result` is the partial result.
    """
    callbacks = Callbacks(on_event, on_text, on_thinking, on_complete)
    collector = Collector(session_id, job_id)
    try:
        async for event in events:
            collector.feed(event)
            await _dispatch(callbacks, event)
    except StreamInterrupted as exc:
        exc.partial = collector.result
        raise
    result = collector.result
    if result.done:
        await _call(callbacks.on_complete, result)
    return check(result) if raise_on_failure else result
