"""Folding events into a `JobResult` is a pure function: retries void text, gaps surface."""

import pytest

from spool_client.events import (
    AnyEvent,
    JobCompleted,
    JobRetrying,
    SessionGap,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    Usage,
    encoder,
    event_type,
)
from spool_client.result import Collector, StreamEvent

pytestmark = pytest.mark.unit


def feed(events: list[AnyEvent]) -> Collector:
    collector = Collector("s", "j")
    for n, event in enumerate(events):
        raw = encoder.encode(event).decode()
        collector.feed(StreamEvent.parse(f"1-{n}", event_type(event), raw))
    return collector


def test_retry_voids_what_the_attempt_said_and_gaps_are_kept() -> None:
    usage = Usage(input_tokens=1, output_tokens=2, total_tokens=3)
    result = feed(
        [
            SessionGap(requested="0-1", first_available="5-0"),
            ThinkingDelta(step=0, delta="hmm"),
            TextDelta(step=0, delta="lost "),
            ToolCall(step=0, call_id="c", name="t", arguments={"x": 1}),
            JobRetrying(attempt=2, reason="worker lost"),
            TextDelta(step=0, delta="kept"),
        ]
    ).result
    assert (result.text, result.thinking, result.tool_calls, result.chunks) == ("kept", "", [], 1)
    assert (result.retries, result.status, result.done) == (1, "running", False)
    assert [g.first_available for g in result.gaps] == ["5-0"]
    assert result.last_event_id == "1-5"
    done = feed([JobCompleted(finish_reason="stop", output_text="ab", usage=usage)]).result
    assert (done.status, done.text, done.usage, done.done) == ("completed", "ab", usage, True)


def test_an_unknown_event_type_is_counted_not_fatal() -> None:
    collector = Collector("s", "j")
    collector.feed(StreamEvent.parse("1-0", "job.future", '{"type":"job.future","x":1}'))
    assert collector.result.events == 1
    assert collector.result.status == "running"
