"""Pure pieces: ids, the arq serializer, settings, the simulated model's tokens."""

import asyncio
import gc
import itertools

import msgspec
import pytest

from spool.api import sse_encoder
from spool.api.hub import entry, notice_entry
from spool.shared import serializer
from spool.shared.ids import before, format_stream_id, parse_stream_id, redis_stream_id
from spool.shared.jobs import Message, SimulatedParameters
from spool.shared.settings import Settings, SettingsError
from spool.worker.errors import OutputLimit, ProviderError
from spool.worker.providers.base import (
    Chunk,
    ModelRequest,
    ProviderEvent,
    TextChunk,
    ThinkingChunk,
    UsageReport,
)
from spool.worker.providers.pacing import Scheduler
from spool.worker.providers.simulated import Chunks, SimulatedProvider, tokenize
from spool_client.events import TextDelta, Usage, decoder, encoder, event_type

pytestmark = pytest.mark.unit


def test_stream_ids() -> None:
    assert parse_stream_id("1700000000000-3") == (1700000000000, 3)
    assert parse_stream_id(b"5-0") == (5, 0)
    for bad in ("", "5", "5-", "-5-1", "a-1", "1-2-3", "1 -2"):
        assert parse_stream_id(bad) is None, bad
    assert format_stream_id((5, 0)) == "5-0"
    assert before((5, 1)) == (5, 0)
    assert before((5, 0)) == (4, 2**64 - 1)
    assert before((0, 0)) == (0, 0)
    for raw in ("1700000000000-3", "0-0", "18446744073709551615-18446744073709551615"):
        assert redis_stream_id(raw) == redis_stream_id(raw.encode()) == parse_stream_id(raw)


def test_arq_payloads_are_msgpack_not_pickle() -> None:
    payload = {"t": 1, "f": "run_job", "a": ["job-1"], "k": {}, "et": 123}
    data = serializer.serialize(payload)
    assert data == msgspec.msgpack.encode(payload)
    assert serializer.deserialize(data) == payload
    assert serializer.serialize({"r": ValueError("boom")}) == msgspec.msgpack.encode(
        {"r": "ValueError: boom"}
    )
    with pytest.raises(msgspec.DecodeError):
        serializer.deserialize(b"\x80\x04\x95")  # a pickle header is not accepted


def test_events_round_trip_and_carry_their_type() -> None:
    event = TextDelta(step=0, delta="x\n😀", job_id="j", seq=1, ts=2)
    data = encoder.encode(event)
    assert b"\n" not in data, "one line of JSON per SSE data field"
    assert data.startswith(b'{"type":"text.delta"')
    assert decoder.decode(data) == event
    assert event_type(event) == "text.delta"


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {"SPOOL_API_KEYS": "acme:k1, globex:k2", "SPOOL_RETENTION_S": "60", "SPOOL_SSE_PING_S": ""}
    )
    assert settings.api_keys == {"k1": "acme", "k2": "globex"}
    assert settings.retention_s == 60
    assert settings.sse_ping_s == 15.0
    assert settings.streams_url == settings.redis_url
    with pytest.raises(SettingsError):
        Settings.from_env({"SPOOL_RETENTION_S": "soon"})
    with pytest.raises(SettingsError):
        Settings.from_env({"SPOOL_API_KEYS": "no-colon"})


@pytest.mark.parametrize(
    "text", ["Hello, world!\n", "  lead\n\ntrail  ", "流式 传输\t😀 x", "", "one"]
)
def test_whitespace_tokens_concatenate_to_the_text(text: str) -> None:
    assert "".join(tokenize(text)) == text
    assert len([t for t in tokenize(text) if t.strip()]) == len(text.split())


def _usage_reports(events: list[ProviderEvent]) -> list[Usage]:
    """Every usage the stream reported, in order: its own reports and its chunks' ones."""
    reports = []
    for e in events:
        report = e if isinstance(e, UsageReport) else getattr(e, "usage", None)
        if isinstance(report, UsageReport):
            reports.append(report.usage)
    return reports


async def test_simulated_model_streams_thinking_then_text_with_usage() -> None:
    request = ModelRequest(
        model="simulated",
        messages=[Message(role="user", content="a b c")],
        parameters={"text": "x y", "thinking": "hmm ok", "ttft_ms": 0, "tokens_per_second": 1e6},
    )
    events = [e async for e in SimulatedProvider().stream(request)]
    thinking = [e.text for e in events if isinstance(e, ThinkingChunk)]
    text = [e.text for e in events if isinstance(e, TextChunk)]
    assert "".join(thinking) == "hmm ok"
    assert "".join(text) == "x y"
    kinds = [type(e) for e in events if isinstance(e, TextChunk | ThinkingChunk)]
    assert kinds == sorted(kinds, key=lambda k: k is TextChunk), "thinking, then text"
    reports = _usage_reports(events)
    assert reports[0].output_tokens == 0, "input usage is reported before the first token"
    assert [r.output_tokens for r in reports] == sorted(r.output_tokens for r in reports)
    usage = reports[-1]
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (3, 4, 7)


async def test_simulated_pace_follows_tokens_per_second() -> None:
    request = ModelRequest(
        model="simulated",
        messages=[],
        parameters={
            "text": "a " * 20,
            "ttft_ms": 0,
            "tokens_per_second": 200,
            "chunk_tokens": 5,
            "behind_ms": -1,  # one chunk per 5 tokens, however late the stream wakes
        },
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    chunks = [e async for e in SimulatedProvider().stream(request) if isinstance(e, TextChunk)]
    assert len(chunks) == 4
    assert loop.time() - start >= 3 * 5 / 200  # three 25 ms gaps between four chunks


async def test_a_simulated_stream_that_wakes_late_hands_over_what_is_due_as_one_chunk() -> None:
    """2,000 tokens due within 2 ms of the start: a stream cannot take them one per wake-up
    that fast, so it merges whatever is due; every chunk's usage counts the tokens so far."""
    words = [f"w{i} " for i in range(2000)]
    request = ModelRequest(
        model="simulated",
        messages=[],
        parameters={"text": "".join(words), "ttft_ms": 0, "tokens_per_second": 1e6},
    )
    events = [e async for e in SimulatedProvider(behind_ms=0).stream(request)]
    chunks = [e for e in events if isinstance(e, TextChunk)]
    assert "".join(c.text for c in chunks) == "".join(words)
    assert len(chunks) < len(words) // 2
    so_far = itertools.accumulate(len(c.text.split()) for c in chunks)
    assert [c.usage.usage.output_tokens if c.usage else None for c in chunks] == list(so_far)
    assert _usage_reports(events)[-1].output_tokens == len(words)


async def test_a_late_simulated_stream_still_fails_after_the_set_tokens() -> None:
    request = ModelRequest(
        model="simulated",
        messages=[],
        parameters={
            "text": "a " * 500,
            "ttft_ms": 0,
            "tokens_per_second": 1e6,
            "fail_after_tokens": 7,
        },
    )
    seen: list[str] = []

    async def consume() -> None:
        async for e in SimulatedProvider(behind_ms=0).stream(request):
            if isinstance(e, TextChunk):
                seen.append(e.text)

    with pytest.raises(ProviderError):
        await consume()
    assert "".join(seen) == "a " * 7


async def test_single_flight_shares_concurrent_calls_and_caches_nothing() -> None:
    from spool.shared.singleflight import SingleFlight

    calls: list[str] = []
    gate = asyncio.Event()

    async def lookup(key: str) -> str:
        calls.append(key)
        await gate.wait()
        return key.upper()

    flight = SingleFlight(lookup)
    waiting = [asyncio.create_task(flight("a")) for _ in range(50)]
    other = asyncio.create_task(flight("b"))
    await asyncio.sleep(0)  # let every caller reach the flight
    gate.set()
    assert await asyncio.gather(*waiting) == ["A"] * 50
    assert await other == "B"
    assert sorted(calls) == ["a", "b"]
    assert await flight("a") == "A"
    assert calls.count("a") == 2, "a call after the first returned is a new call"


async def test_a_single_flight_that_fails_after_its_callers_left_is_not_logged() -> None:
    """Its error is retrieved: asyncio would otherwise report it as never retrieved."""
    from spool.shared.singleflight import SingleFlight

    reported: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    gate = asyncio.Event()

    async def lookup(key: str) -> str:
        await gate.wait()
        raise ConnectionError(key)

    flight = SingleFlight(lookup)
    caller = asyncio.create_task(flight("a"))
    await asyncio.sleep(0)  # the caller is in flight
    (inner,) = flight._flights.values()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    gate.set()
    await asyncio.wait([inner])  # the flight ends with nobody awaiting it
    del inner
    gc.collect()
    loop.set_exception_handler(None)
    assert reported == []


def _feed(text: str, **params: object) -> Chunks:
    spec = msgspec.convert(
        {"text": text, "ttft_ms": 0, "tokens_per_second": 5000, **params}, SimulatedParameters
    )
    return Chunks(spec, text, 0, asyncio.get_running_loop().time(), behind_s=-1)


async def test_the_scheduler_hands_every_chunk_to_the_sink_in_order_when_it_has_room() -> None:
    """The chunks carry no usage: the feed's usage counts each as it is handed over."""
    words = [f"w{i} " for i in range(40)]
    feed, got, used, asked = _feed("".join(words)), [], [], 0

    def room() -> bool:  # every other tick the job's buffer is full
        nonlocal asked
        asked += 1
        return asked % 2 == 0

    def sink(chunk: Chunk) -> None:
        got.append(chunk)
        used.append(feed.usage().usage.output_tokens)

    await Scheduler(asyncio.get_running_loop()).run(feed, sink, room)
    assert [c.text for c in got] == words, "one chunk per token, in order, none lost"
    assert all(c.usage is None for c in got)
    assert used == list(range(1, 41))
    assert asked >= 2 * len(words) - 1


async def test_a_chunk_due_already_goes_to_the_sink_before_the_run_waits() -> None:
    """No time to first token: the chunk is handed over in the run's first step (it shares
    the append round of `job.started`), not at the next millisecond's tick."""
    got: list[Chunk] = []
    run = Scheduler(asyncio.get_running_loop()).run(_feed("only"), got.append, lambda: True)
    with pytest.raises(StopIteration):
        run.send(None)  # finished without waiting for any timer
    assert [c.text for c in got] == ["only"]


async def test_a_sink_error_or_the_feed_failure_ends_the_run_with_it() -> None:
    scheduler, got = Scheduler(asyncio.get_running_loop()), []

    def full_after_three(chunk: Chunk) -> None:
        if len(got) == 3:
            raise OutputLimit("over")
        got.append(chunk)

    feed = _feed("a " * 10)
    with pytest.raises(OutputLimit):
        await scheduler.run(feed, full_after_three, lambda: True)
    assert len(got) == 3
    assert feed.usage().usage.output_tokens == 3, "the refused chunk is not counted"
    with pytest.raises(ProviderError):
        await scheduler.run(_feed("a " * 10, fail_after_tokens=4), got.append, lambda: True)
    assert len(got) == 3 + 4


async def test_a_cancelled_run_gets_no_more_chunks() -> None:
    scheduler, got, first = Scheduler(asyncio.get_running_loop()), [], asyncio.Event()

    def sink(chunk: Chunk) -> None:
        got.append(chunk)
        first.set()

    run = asyncio.create_task(scheduler.run(_feed("a " * 1000), sink, lambda: True))
    await first.wait()
    run.cancel()
    seen = len(got)
    await scheduler.run(_feed("b " * 20), lambda _: None, lambda: True)  # later ticks pass
    assert len(got) == seen
    assert run.cancelled()


@pytest.mark.parametrize("data", [b'{"a":1}', b"", b"two\nlines", b"cr\rlf\r\nend"])
def test_an_entry_frame_is_the_encoder_s_frame(data: bytes) -> None:
    assert sse_encoder.entry(b"5-1", b"text.delta", data) == sse_encoder.encode(
        data, id=b"5-1", event=b"text.delta"
    )


@pytest.mark.parametrize("data", ['{"delta":"é ✓"}', '{"a":1}', "two\nlines", "cr\rlf\r\nend"])
def test_an_entry_from_a_notice_is_the_entry_read_from_redis(data: str) -> None:
    """`notice_entry` formats a notice's strings at once; `entry` frames the bytes read
    from Redis: the same entries, which the garbage collector never tracks."""
    made = notice_entry("17-3", "text.delta", b"j", data)
    assert made == entry(b"17-3", b"text.delta", b"j", data.encode())
    assert (made.sid, made.raw_id, made.kind) == ((17, 3), b"17-3", b"text.delta")
    assert not gc.is_tracked(made)
