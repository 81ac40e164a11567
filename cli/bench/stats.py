"""Numbers from client results: percentiles, overlap, rates."""

import math
from collections.abc import Sequence
from typing import Any

from spool.cli.bench.clients import Result


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (nearest rank) of `values`, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    def rounded(q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value, 3)

    return {
        "n": len(values),
        "p50": rounded(50),
        "p90": rounded(90),
        "p99": rounded(99),
        "max": rounded(100),
    }


def first_delta_ms(results: Sequence[Result]) -> list[float]:
    return [(r.first_delta - r.started) * 1000 for r in results if r.first_delta]


def relay_ms(results: Sequence[Result]) -> list[float]:
    return [x for r in results for x in r.relay_ms]


def relay_parts(results: Sequence[Result]) -> dict[str, dict[str, float | int | None]]:
    """The relay split at Redis (whose clock stamps the entry id): worker → Redis, and
    Redis → API → client. Both halves have the 1 ms granularity of the stamps."""
    return {
        "worker_to_redis_ms": summary([x for r in results for x in r.append_ms]),
        "redis_to_client_ms": summary([x for r in results for x in r.deliver_ms]),
    }


def relay_by_second(results: Sequence[Result], since_ms: float = 0.0) -> list[dict[str, Any]]:
    """The relay of the text deltas that arrived in each second of the run (from the first
    arrival at or after `since_ms`, wall clock): a relay that climbs second after second is
    a queue that grows (the stack is past what it can carry), a flat one with a high tail is
    not."""
    arrivals = [
        (arrived, relay)
        for r in results
        for arrived, relay in zip(r.arrivals, r.relay_ms, strict=True)
        if arrived * 1000 >= since_ms
    ]
    if not arrivals:
        return []
    start = min(arrived for arrived, _ in arrivals)
    seconds: dict[int, list[float]] = {}
    for arrived, relay in arrivals:
        seconds.setdefault(int(arrived - start), []).append(relay)
    return [
        {"second": s, "n": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99)}
        for s, v in sorted(seconds.items())
    ]


def max_overlap(results: Sequence[Result]) -> int:
    """Most jobs running at once, from the worker's own `job.started` and terminal stamps."""
    marks: list[tuple[int, int]] = []
    for r in results:
        if r.job_started_ts and r.terminal_ts:
            marks += [(r.job_started_ts, 1), (r.terminal_ts, -1)]
    running = peak = 0
    for _, step in sorted(marks, key=lambda m: (m[0], m[1])):
        running += step
        peak = max(peak, running)
    return peak


def pace_tokens_per_s(results: Sequence[Result]) -> list[float]:
    """Each generation's pace: tokens per second from its first delta's stamp to its last's
    (a delta stamps its first token; the tokens of the last delta come after)."""
    out = []
    for r in results:
        span = r.last_delta_ts - r.first_delta_ts
        before_last = r.tokens - (r.arrival_tokens[-1] if r.arrival_tokens else 0)
        if r.deltas > 1 and span > 0:
            out.append(before_last / (span / 1000))
    return out


def errors(results: Sequence[Result]) -> list[str]:
    return [r.error for r in results if r.error]


def steady_rate(results: Sequence[Result]) -> dict[str, Any]:
    """Text deltas (and the tokens in them) per second delivered while every generation
    was under way: from the arrival of the last generation's first delta to that of the
    first one's last delta, and the relay of those deltas (`relay_ms`). When that window
    is under a second (the generations did not all overlap), the figures are over the
    whole span instead, and `all_at_once` is False."""
    streams = [r for r in results if r.arrivals]
    if not streams:
        return {
            "events_per_s": 0.0,
            "tokens_per_s": 0.0,
            "window_s": 0.0,
            "all_at_once": False,
            "relay_ms": summary([]),
        }
    start = max(r.arrivals[0] for r in streams)
    end = min(r.arrivals[-1] for r in streams)
    all_at_once = end - start >= 1.0
    if not all_at_once:
        start = min(r.arrivals[0] for r in streams)
        end = max(r.arrivals[-1] for r in streams)
    events = tokens = 0
    relay = []
    for r in streams:
        for t, n, ms in zip(r.arrivals, r.arrival_tokens, r.relay_ms, strict=True):
            if start <= t <= end:
                events += 1
                tokens += n
                relay.append(ms)
    window = max(1e-3, end - start)
    return {
        "events_per_s": round(events / window, 1),
        "tokens_per_s": round(tokens / window, 1),
        "window_s": round(window, 2),
        "all_at_once": all_at_once,
        "relay_ms": summary(relay),
    }
