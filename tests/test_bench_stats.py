"""The capacity figures: the rate and the relay p99 of the window where every stream runs;
the relay second by second."""

import pytest

from spool.cli.bench.clients import Result
from spool.cli.bench.stats import relay_by_second, steady_rate

pytestmark = pytest.mark.unit


def stream(start: float, relays: list[float]) -> Result:
    """One delta every 0.1 s from `start`, one token each, with these relays."""
    arrivals = [start + i / 10 for i in range(len(relays))]
    return Result(arrivals=arrivals, arrival_tokens=[1] * len(relays), relay_ms=relays)


def test_the_window_opens_at_the_last_streams_first_delta() -> None:
    # the first stream's deltas wait 800 ms while the other's submission is served; once
    # both run, 5 ms
    early = stream(0.0, [800.0] * 10 + [5.0] * 30)
    late = stream(1.0, [5.0] * 35)
    figures = steady_rate([early, late])
    assert figures["all_at_once"] is True
    assert figures["window_s"] == pytest.approx(2.9)  # 1.0 s .. early's last, 3.9 s
    assert figures["relay_ms"]["p99"] == 5.0
    assert figures["relay_ms"]["n"] == 60  # 30 of each stream's deltas
    assert figures["events_per_s"] == pytest.approx(60 / 2.9, rel=0.01)


def test_streams_that_never_overlap_long_are_judged_over_the_whole_span() -> None:
    figures = steady_rate([stream(0.0, [5.0] * 5), stream(0.45, [50.0] * 5)])
    assert figures["all_at_once"] is False
    assert figures["relay_ms"]["n"] == 10
    assert figures["relay_ms"]["max"] == 50.0


def test_the_relay_by_second_shows_a_growing_queue() -> None:
    # a stream whose deltas wait 10 ms more every second, and one that keeps up
    growing = stream(100.0, [10.0 * (i // 10) for i in range(30)])
    steady = stream(100.05, [5.0] * 30)
    seconds = relay_by_second([growing, steady])
    assert [s["second"] for s in seconds] == [0, 1, 2]
    assert [s["p99"] for s in seconds] == [5.0, 10.0, 20.0]
    assert [s["n"] for s in seconds] == [20, 20, 20]


def test_the_relay_by_second_counts_from_the_given_moment() -> None:
    # what arrived before `since_ms` (a replay of older events) is left out
    seconds = relay_by_second([stream(100.0, [900.0] * 10 + [5.0] * 10)], since_ms=101_000)
    assert seconds == [{"second": 0, "n": 10, "p50": 5.0, "p99": 5.0}]
