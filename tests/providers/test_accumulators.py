"""The pure parts of the providers: stream accumulators, error mapping, memory bounds,
pricing. No network: SDK event objects are built from the documented wire JSON."""

import json

import pytest
from anthropic.types import RawMessageStreamEvent
from openai.types.chat import ChatCompletionChunk
from pydantic import TypeAdapter

from spool.shared.pricing import TokenCounts, price_job
from spool.worker.errors import ProviderError
from spool.worker.providers.anthropic_wire import MessageSnapshot
from spool.worker.providers.base import (
    Finished,
    ProviderEvent,
    TextChunk,
    ThinkingBlock,
    ThinkingChunk,
    ToolCallChunk,
    ToolCallRequest,
    UsageReport,
)
from spool.worker.providers.failures import _from_status, retry_after, retry_delay
from spool.worker.providers.openai_wire import CompletionSnapshot
from tests.fakes import anthropic_sse as a
from tests.fakes import openai_sse as o

pytestmark = pytest.mark.unit

_anthropic = TypeAdapter[RawMessageStreamEvent](RawMessageStreamEvent)


def replay_anthropic(frames: list[str]) -> list[ProviderEvent]:
    snapshot, events = MessageSnapshot(), []
    for frame in frames:
        data = json.loads(frame.split("data: ", 1)[1])
        if data["type"] != "ping":
            events += snapshot.handle(_anthropic.validate_python(data))
    return events + snapshot.finish()


def replay_openai(frames: list[str]) -> list[ProviderEvent]:
    snapshot, events = CompletionSnapshot(), []
    for frame in frames:
        data = frame.removeprefix("data: ").strip()
        if data != "[DONE]":
            events += snapshot.handle(ChatCompletionChunk.model_validate_json(data))
    return events + snapshot.finish()


def test_anthropic_thinking_text_and_tool_use() -> None:
    events = replay_anthropic(
        [
            a.message_start(7, cache_read_input_tokens=3, cache_creation_input_tokens=2),
            *a.thinking_block(0, "hm", signature="S"),
            *a.text_block(1, "Hi"),
            *a.tool_use_block(2, "t1", "calc", '{"a"', ": 1}"),
            *a.message_end("tool_use", 9),
        ]
    )
    usage = [e for e in events if isinstance(e, UsageReport)]
    assert usage[-1].usage.input_tokens == 12  # 7 uncached + 3 read + 2 written
    assert usage[-1].usage.output_tokens == 9
    assert (usage[-1].cache_read, usage[-1].cache_write) == (3, 2)
    rest = [e for e in events if not isinstance(e, UsageReport)]
    assert rest == [
        ThinkingChunk("hm"),
        ThinkingBlock("hm", "S"),
        TextChunk("Hi"),
        ToolCallChunk("t1", "calc", '{"a"'),
        ToolCallChunk("t1", "calc", ": 1}"),
        ToolCallRequest("t1", "calc", {"a": 1}),
        Finished("tool_calls", "tool_use"),
    ]


def test_anthropic_stream_without_message_stop_is_a_disconnect() -> None:
    with pytest.raises(ProviderError) as info:
        replay_anthropic([a.message_start(1), *a.text_block(0, "x")])
    assert info.value.code == "provider_disconnected"
    assert info.value.retryable


def test_openai_fragments_merge_by_index() -> None:
    first = o.tool_call(0, "a", "f", '{"x"', ": 1}")
    second = o.tool_call(1, "b", "g", "{}")
    events = replay_openai([*o.text("ok"), *second, *first, *o.end("tool_calls", 4, 2)])
    assert events[0] == TextChunk("ok")
    calls = [e for e in events if isinstance(e, ToolCallRequest)]
    assert calls == [ToolCallRequest("a", "f", {"x": 1}), ToolCallRequest("b", "g", {})]
    pieces = [e for e in events if isinstance(e, ToolCallChunk)]
    assert pieces == [
        ToolCallChunk("b", "g", "{}"),
        ToolCallChunk("a", "f", '{"x"'),
        ToolCallChunk("a", "f", ": 1}"),
    ]
    assert events[-1] == Finished("tool_calls", "tool_calls")
    (usage,) = [e for e in events if isinstance(e, UsageReport)]
    assert usage.usage.total_tokens == 6


def test_openai_length_and_bad_arguments() -> None:
    assert replay_openai([*o.text("a"), *o.end("length", 1, 1)])[-1] == Finished("length", "length")
    with pytest.raises(ProviderError, match="not JSON"):
        replay_openai([*o.tool_call(0, "a", "f", '{"x'), *o.end("tool_calls", 1, 1)])


@pytest.mark.parametrize(
    ("status", "kind", "code", "retryable"),
    [
        (401, None, "provider_auth", False),
        (429, None, "provider_rate_limited", True),
        (529, None, "provider_overloaded", True),
        (503, None, "provider_unavailable", True),
        (400, None, "provider_bad_request", False),
        (200, "overloaded_error", "provider_overloaded", True),
        (200, "authentication_error", "provider_auth", False),
    ],
)
def test_failure_mapping(status: int, kind: str | None, code: str, retryable: bool) -> None:
    error = _from_status(status, kind, "m")
    assert (error.code, error.retryable) == (code, retryable)


def test_retry_after_headers() -> None:
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"retry-after": "1.5", "retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=1445412500) == 10
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=1445412600) == 0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_retry_delay_is_jittered_and_never_before_retry_after() -> None:
    assert retry_delay(0, 1.0, None, rand=lambda: 0.0) == 0.5
    assert retry_delay(2, 1.0, None, rand=lambda: 0.999) == pytest.approx(4.0, abs=0.01)
    assert retry_delay(1, 1.0, 3.0, rand=lambda: 0.0) == 3.0
    assert retry_delay(1, 1.0, 3.0, rand=lambda: 0.5) == 3.5
    delays = {retry_delay(1, 1.0, None) for _ in range(20)}
    assert len(delays) > 1
    assert all(1.0 <= d < 2.0 for d in delays)


def test_pricing_counts_cache_and_flags_unknown_models() -> None:
    tokens = TokenCounts(input=1_000_000, output=1_000_000, cache_read=500_000, cache_write=0)
    cost, warning = price_job("anthropic:claude-sonnet-4-5", tokens)
    assert warning is None
    assert cost is not None
    assert cost.input == pytest.approx(0.5 * 3 + 0.5 * 0.3)
    assert cost.output == pytest.approx(15)
    cost, warning = price_job("openai:mystery", tokens)
    assert cost is None
    assert warning is not None
    assert "mystery" in warning
