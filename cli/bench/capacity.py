"""Capacity phases: how much the stack delivers at a latency bound, and at what density.

- `capacity`: the most text-delta events per second delivered with relay p99 within
  `capacity_p99_ms` at `tokens_per_second` per stream. The number of concurrent streams
  doubles from `capacity_start` until a step fails, then is bisected; each step is one
  bounded run of `run_streams` (its generations last `capacity_tokens / tokens_per_second`).
  A step passes when the relay p99 of the deltas delivered while all its generations ran
  (the window its rate is counted over) is within the bound, no client failed and the
  generations really ran at once (the worker's own stamps: at least 95% of them). The
  step's start, N `POST /v1/stream` at the same instant, is a submission burst (the
  `submissions` phase measures that): a stream whose response starts late receives its
  first deltas late, so the p99 over the whole step (`relay_ms`, reported beside) is the
  burst's, not the steady rate's.
- `density`: `density_streams` generations at once in the one worker process.
"""

from typing import Any

from spool.cli.bench.phases import Figures, Options, Progress, run_streams
from spool.cli.bench.stack import Stack

STEP_GRACE_S = 60.0  # a step's clients may take this much longer than its generations
MAX_STEPS = 10


def _step(stack: Stack, opts: Options, progress: Progress, count: int) -> Figures:
    duration = opts.capacity_tokens / opts.tokens_per_second
    try:
        figures = run_streams(
            stack,
            opts,
            progress,
            count=count,
            tokens=opts.capacity_tokens,
            label=f"cap {count}",
            timeout_s=duration + STEP_GRACE_S,
        )
    except TimeoutError as exc:  # the step's clients did not finish in time: it failed
        return {"streams": count, "passed": False, "timeout": str(exc)}
    p99 = figures["steady"]["relay_ms"]["p99"]
    ran = figures["worker_concurrency_reached"]
    figures["passed"] = bool(
        p99 is not None
        and p99 <= opts.capacity_p99_ms
        and figures["errors"]["count"] == 0
        and ran >= 0.95 * count
    )
    return figures


def _summary(figures: Figures) -> dict[str, Any]:
    if "timeout" in figures:
        return {"streams": figures["streams"], "passed": False, "timeout": figures["timeout"]}
    return {
        "streams": figures["streams"],
        "passed": figures["passed"],
        "offered_events_per_s": figures["streams"] * figures["tokens_per_second"],
        "delivered_events_per_s": figures["steady"]["events_per_s"],
        "delivered_tokens_per_s": figures["steady"]["tokens_per_s"],
        "all_at_once": figures["steady"]["all_at_once"],
        "concurrency_reached": figures["worker_concurrency_reached"],
        "relay_ms_steady": figures["steady"]["relay_ms"],
        "relay_ms": figures["relay_ms"],
        "relay_split": figures["relay_split"],
        "relay_by_second": figures["relay_by_second"],
        "cpu": figures["cpu"],
        "errors": figures["errors"]["count"],
    }


def _next(count: int, passed: int | None, failed: int | None, most: int) -> int | None:
    """The next step's stream count; None when the search is done."""
    if failed is None:
        return None if passed is not None and passed >= most else min(most, count * 2)
    if passed is None:
        return None if count <= 10 else count // 2
    if failed - passed <= max(10, passed // 10):
        return None
    return (passed + failed) // 2


def capacity(stack: Stack, opts: Options, progress: Progress) -> Figures:
    steps: list[dict[str, Any]] = []
    passed: Figures | None = None
    failed: int | None = None
    count: int | None = opts.capacity_start
    while count is not None and len(steps) < MAX_STEPS:
        figures = _step(stack, opts, progress, count)
        steps.append(_summary(figures))
        if figures["passed"]:
            passed = figures
        else:
            failed = count if failed is None else min(failed, count)
        count = _next(count, passed["streams"] if passed else None, failed, opts.capacity_max)
    best = _summary(passed) if passed else None
    return {
        "tokens_per_second": opts.tokens_per_second,
        "tokens_per_stream": opts.capacity_tokens,
        "p99_bound_ms": opts.capacity_p99_ms,
        "best": best,
        "events_per_s": best["delivered_events_per_s"] if best else 0.0,
        "streams": best["streams"] if best else 0,
        "steps": steps,
        "_relay_samples": passed["_relay_samples"] if passed else [],
    }


def density(stack: Stack, opts: Options, progress: Progress) -> Figures:
    return run_streams(
        stack,
        opts,
        progress,
        count=opts.density_streams,
        tokens=opts.density_tokens,
        label="density",
    )
