"""Folding events into a `JobResult` is a pure function: retries void text, gaps surface."""

import pytest

from spool_client.events import (
    AnyEvent,
    Cost,
    ErrorInfo,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobRetrying,
    SessionDeleted,
    SessionGap,
    TextDelta,
    ThinkingDelta,
    ToolApprovalRequested,
    ToolApprovalResolved,
    ToolCall,
    ToolCallDelta,
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


def test_tool_argument_deltas_and_approvals_are_folded() -> None:
    result = feed(
        [
            ToolCallDelta(step=0, call_id="c1", name="calc", arguments_delta='{"x"'),
            ToolCallDelta(step=0, call_id="c1", name="calc", arguments_delta=": 1}"),
            ToolCall(step=0, call_id="c1", name="calc", arguments={"x": 1}),
            ToolApprovalRequested(step=0, call_id="c1", name="calc", arguments={"x": 1}),
            ToolApprovalRequested(step=0, call_id="c2", name="rm", arguments={}),
            ToolApprovalResolved(step=0, call_id="c1", approved=False, reason="no"),
        ]
    ).result
    assert result.tool_arguments == {"c1": '{"x": 1}'}
    assert [a.call_id for a in result.approvals_requested] == ["c1", "c2"]
    assert [(a.call_id, a.approved, a.reason) for a in result.approvals] == [("c1", False, "no")]
    assert [a.call_id for a in result.pending_approvals] == ["c2"]


def test_chain_steps_each_start_a_new_text_and_a_retried_step_restarts() -> None:
    collector = Collector("s", "j")
    steps = [(0, "one "), (0, "two"), (1, "three"), (1, "lost"), (None, None), (1, "four")]
    for n, (step, delta) in enumerate(steps):
        if delta is None:
            event: AnyEvent = JobRetrying(attempt=2, reason="worker lost")
            raw = encoder.encode(event).decode()
        else:
            raw = encoder.encode(TextDelta(step=0, delta=delta)).decode()
            raw = raw[:-1] + f',"chain_step":{step}}}'
        collector.feed(StreamEvent.parse(f"1-{n}", "x", raw))
    result = collector.result
    assert result.chain_outputs == ["one two", "four"]
    assert (result.chain_step, result.text) == (1, "four")


def test_failed_and_cancelled_keep_cost_and_partial_text_and_deletion_ends_the_job() -> None:
    cost = Cost(input=0.1, output=0.2, total=0.3)
    error = ErrorInfo(code="provider_error", message="boom")
    usage = Usage(input_tokens=1, output_tokens=1, total_tokens=2)
    failed = feed([JobFailed(error=error, usage=usage, output_text="part", cost=cost)]).result
    assert (failed.status, failed.text, failed.cost, failed.error) == (
        "failed",
        "part",
        cost,
        error,
    )
    cancelled = feed([JobCancelled(output_text="pa", usage=usage, cost=cost)]).result
    assert (cancelled.status, cancelled.cost) == ("cancelled", cost)
    deleted = feed([TextDelta(step=0, delta="a"), SessionDeleted()]).result
    assert (deleted.status, deleted.session_deleted, deleted.text) == ("cancelled", True, "a")


def test_a_known_type_with_an_unexpected_shape_is_ignored_not_fatal() -> None:
    collector = Collector("s", "j")
    collector.feed(StreamEvent.parse("1-0", "text.delta", '{"type":"text.delta","delta":7}'))
    collector.feed(StreamEvent.parse("1-1", "tool.call.delta", '{"type":"tool.call.delta"}'))
    assert (collector.result.events, collector.result.text) == (2, "")
