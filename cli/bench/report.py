"""The benchmark's outputs: a JSON file, a table on the terminal, a PNG latency plot."""

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

Figures = dict[str, Any]

AT_MOST, AT_LEAST = "≤", "≥"
Bound = tuple[str, float] | None

TARGETS: tuple[tuple[str, str, tuple[str, ...], Bound], ...] = (
    # (label, phase, path, bound)
    ("machine: Python loop (ms, 2M additions)", "machine", ("python_loop_ms",), None),
    ("P1 overhead p50 (ms)", "p1", ("overhead_ms", "p50"), (AT_MOST, 3.0)),
    ("P1 overhead p99 (ms)", "p1", ("overhead_ms", "p99"), (AT_MOST, 15.0)),
    ("P2 relay p50 (ms)", "streams", ("relay_ms", "p50"), (AT_MOST, 2.0)),
    ("P2 relay p99 (ms)", "streams", ("relay_ms", "p99"), (AT_MOST, 10.0)),
    ("fan-out clients held", "fanout", ("clients_held",), None),
    ("fan-out API Redis connections", "fanout", ("api_redis_connections_max",), (AT_MOST, 16)),
    ("fan-out RSS per client (KB)", "fanout", ("rss_per_client_kb",), (AT_MOST, 20.0)),
    ("fan-out frames/s", "fanout", ("events_per_s",), (AT_LEAST, 50_000)),
    ("fan-out relay p99 (ms)", "fanout", ("relay_ms", "p99"), (AT_MOST, 100.0)),
    ("fan-out API µs/frame", "fanout", ("cpu", "api", "us_per_event"), None),
    ("fan-out load generator µs/frame", "fanout", ("cpu", "generator", "us_per_event"), None),
    ("fan-out API µs per client joining", "fanout", ("api_us_per_client_joining",), None),
    ("fan-out API µs per client leaving", "fanout", ("api_us_per_client_leaving",), None),
    ("worker concurrency reached", "streams", ("worker_concurrency_reached",), None),
    ("worker CPU (%)", "streams", ("worker_cpu_percent",), None),
    ("generation pace p50 (tokens/s)", "streams", ("pace_tokens_per_s", "p50"), None),
    ("events/s (streams)", "streams", ("events_per_s",), None),
    ("streams: worker µs/event", "streams", ("cpu", "worker", "us_per_event"), None),
    ("streams: API µs/event", "streams", ("cpu", "api", "us_per_event"), None),
    ("streams: Redis µs/event", "streams", ("cpu", "redis", "us_per_event"), None),
    ("capacity: events/s at p99 ≤ bound", "capacity", ("events_per_s",), (AT_LEAST, 40_000)),
    ("capacity: streams", "capacity", ("streams",), None),
    ("capacity: relay p99 all at once (ms)", "capacity", ("best", "relay_ms_steady", "p99"), None),
    ("capacity: relay p99 whole step (ms)", "capacity", ("best", "relay_ms", "p99"), None),
    ("capacity: worker µs/event", "capacity", ("best", "cpu", "worker", "us_per_event"), None),
    ("capacity: API µs/event", "capacity", ("best", "cpu", "api", "us_per_event"), None),
    ("capacity: Redis µs/event", "capacity", ("best", "cpu", "redis", "us_per_event"), None),
    (
        "capacity: load generator µs/event",
        "capacity",
        ("best", "cpu", "generator", "us_per_event"),
        None,
    ),
    ("density: generations at once", "density", ("worker_concurrency_reached",), (AT_LEAST, 1000)),
    ("density: relay p99 (ms)", "density", ("relay_ms", "p99"), (AT_MOST, 100.0)),
    ("density: relay p99 all at once (ms)", "density", ("steady", "relay_ms", "p99"), None),
    ("submissions: jobs/s accepted", "submissions", ("jobs_per_s",), (AT_LEAST, 1000)),
    ("submissions: streams open", "submissions", ("streams_open",), None),
)


def machine() -> Figures:
    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "system": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python_loop_ms": python_loop_ms(),
    }


LOOP_ADDITIONS = 2_000_000


def python_loop_ms(tries: int = 3) -> float:
    """A yardstick for the machine: the best of `tries` runs of a plain Python loop of
    `LOOP_ADDITIONS` additions, in ms. Hosts of the same nominal size differ several-fold
    (docs/benchmarks-history.md, fourth round); figures from two runs compare only when
    this does."""
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        total = 0
        for i in range(LOOP_ADDITIONS):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def _get(figures: Figures, phase: str, path: tuple[str, ...]) -> Any:
    value: Any = figures.get(phase)
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def table(figures: Figures) -> Table:
    out = Table(title="spool bench")
    for column in ("figure", "value", "target", ""):
        out.add_column(column)
    for label, phase, path, bound in TARGETS:
        value = _get(figures, phase, path)
        if value is None:
            continue
        out.add_row(label, f"{value}", *_judge(value, bound))
    return out


def _judge(value: float, bound: Bound) -> tuple[str, str]:
    if bound is None:
        return "", ""
    op, limit = bound
    met = value <= limit if op == AT_MOST else value >= limit
    return f"{op} {limit:g}", "ok" if met else "MISSED"


def public(figures: Figures) -> Figures:
    """The figures without the raw samples (keys starting with `_`)."""
    if isinstance(figures, dict):
        return {k: public(v) for k, v in figures.items() if not k.startswith("_")}
    return figures


def write_json(figures: Figures, path: Path) -> None:
    path.write_text(json.dumps(public(figures), indent=2) + "\n")


def write_plot(figures: Figures, path: Path, console: Console) -> bool:
    """Latency CDFs; needs matplotlib (`pip install 'spool[bench]'`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        console.print("no matplotlib: skipping the plot (pip install -e '.\\[bench]')")
        return False
    series = {
        "P1 baseline: submit → first delta": _get(figures, "p1", ("_baseline_samples",)),
        "P1 Spool: submit → first delta": _get(figures, "p1", ("_spool_samples",)),
        "P2 relay, streams phase": _get(figures, "streams", ("_relay_samples",)),
        "relay, fan-out phase": _get(figures, "fanout", ("_relay_samples",)),
        "relay, capacity best step (whole step)": _get(figures, "capacity", ("_relay_samples",)),
        "relay, density phase": _get(figures, "density", ("_relay_samples",)),
    }
    steps = _get(figures, "capacity", ("steps",)) or []
    fig, axes = plt.subplots(1, 2 if steps else 1, figsize=(15 if steps else 9, 5), squeeze=False)
    ax = axes[0][0]
    for label, samples in series.items():
        if samples:
            ordered = sorted(samples)
            ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
            ax.plot([max(x, 0.01) for x in ordered], ys, label=f"{label} (n={len(ordered)})")
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds (log)")
    ax.set_ylabel("fraction of samples ≤ x")
    ax.set_title("spool bench: latency CDFs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if steps:
        _plot_steps(axes[0][1], steps, float(_get(figures, "capacity", ("p99_bound_ms",)) or 0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_steps(ax: Any, steps: list[dict[str, Any]], bound_ms: float) -> None:
    """The capacity search: delivered events/s against relay p99, one point per step: the
    p99 a step is judged on (all its streams running), and, hollow, its whole-step p99."""

    def p99(step: dict[str, Any], key: str) -> float | None:
        value = (step.get(key) or {}).get("p99")
        return None if value is None else max(float(value), 0.1)

    for passed, marker, label in ((True, "o", "passed"), (False, "x", "failed")):
        mine = [s for s in steps if s["passed"] is passed and p99(s, "relay_ms_steady")]
        ax.scatter(
            [s["delivered_events_per_s"] for s in mine],
            [p99(s, "relay_ms_steady") for s in mine],
            marker=marker,
            label=f"{label}: p99 while all streams run",
        )
        for s in mine:
            ax.annotate(str(s["streams"]), (s["delivered_events_per_s"], p99(s, "relay_ms_steady")))
    whole = [s for s in steps if p99(s, "relay_ms")]
    ax.scatter(
        [s["delivered_events_per_s"] for s in whole],
        [p99(s, "relay_ms") for s in whole],
        marker="o",
        facecolors="none",
        edgecolors="grey",
        label="p99 of the whole step (start burst included)",
    )
    ax.axhline(bound_ms, linestyle="--", color="grey", label=f"p99 bound {bound_ms:g} ms")
    ax.set_yscale("log")
    ax.set_xlabel("text deltas delivered per second (all streams running)")
    ax.set_ylabel("relay p99, ms (log)")
    ax.set_title("capacity search (labels: concurrent streams)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
