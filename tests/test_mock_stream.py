"""`spool_client.testing.mock_stream`: a job's events in process, folded like a real stream."""

import pytest

from spool_client import JobCancelledError, JobFailedError, StreamEvent, collect_events
from spool_client.events import Usage
from spool_client.ids import parse_stream_id
from spool_client.testing import mock_events, mock_stream

pytestmark = pytest.mark.unit


def test_events_are_well_formed_and_usage_adds_up() -> None:
    events = mock_events("Hello big wide world", chunk_size=2, thinking="let me see")
    assert events[0].type == "job.queued"
    assert events[-1].type == "job.completed"
    assert [e.data["seq"] for e in events] == list(range(len(events)))
    ids = [parse_stream_id(e.id or "") for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(e.event is not None for e in events), "every event decodes as its typed struct"
    deltas = [e.data["delta"] for e in events if e.type == "text.delta"]
    assert deltas == ["Hello big ", "wide world"]
    steps = [e.event.usage for e in events if e.type == "step.finished" and e.event]  # type: ignore[union-attr]
    total = sum(steps, Usage())
    assert events[-1].data["usage"] == {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}
    assert (total.output_tokens, total.total_tokens) == (7, 12)  # 4 words + 3 of thinking


async def test_mock_stream_folds_with_callbacks_like_a_real_stream() -> None:
    texts: list[str] = []
    thoughts: list[str] = []
    seen: list[StreamEvent] = []
    done = []

    async def on_complete(result: object) -> None:  # coroutine callbacks are awaited
        done.append(result)

    result = await collect_events(
        mock_stream("a b c", thinking="hm", delay=0.001),
        on_text=texts.append,
        on_thinking=thoughts.append,
        on_event=seen.append,
        on_complete=on_complete,
    )
    assert (result.status, result.text, result.thinking) == ("completed", "a b c", "hm")
    assert (texts, thoughts) == (["a ", "b ", "c"], ["hm"])
    assert done == [result]
    assert (result.job_id, result.session_id, result.events) == ("job-mock", "ses-mock", len(seen))
    assert result.usage.output_tokens == 4


async def test_tool_calls_stream_their_arguments_and_ask_for_approval() -> None:
    calls = [{"name": "calculator", "arguments": {"expression": "2+2"}, "output": "4"}]
    result = await collect_events(mock_stream("It is 4.", tool_calls=calls, approval=True))
    assert [c.name for c in result.tool_calls] == ["calculator"]
    assert result.tool_arguments == {"call_0": '{"expression": "2+2"}'}
    assert [r.output for r in result.tool_results] == ["4"]
    assert [a.approved for a in result.approvals] == [True]
    assert result.pending_approvals == []
    rejected = await collect_events(mock_stream("ok", tool_calls=calls, approval=False))
    assert [(r.is_error, r.output) for r in rejected.tool_results] == [
        (True, "The call was rejected: rejected")
    ]


async def test_failure_and_cancellation_end_with_partial_output() -> None:
    failed = await collect_events(mock_stream("one two three four", fail_after_tokens=2))
    assert (failed.status, failed.text, failed.usage.output_tokens) == ("failed", "one two ", 2)
    assert failed.error is not None
    assert failed.error.code == "provider_error"
    with pytest.raises(JobFailedError) as caught:
        await collect_events(mock_stream("x y", fail="model fell over"), raise_on_failure=True)
    assert caught.value.message == "model fell over"
    assert caught.value.result.text == "x y"
    with pytest.raises(JobCancelledError) as cancelled:
        await collect_events(mock_stream("a b c", cancel_after_tokens=1), raise_on_failure=True)
    assert (cancelled.value.result.status, cancelled.value.result.text) == ("cancelled", "a ")
