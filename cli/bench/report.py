"""The benchmark's outputs: a JSON file, a table on the terminal, a PNG latency plot."""

import json
import os
import platform
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

Figures = dict[str, Any]

TARGETS = (
    # (label, phase, path, bound)
    ("P1 overhead p50 (ms)", "p1", ("overhead_ms", "p50"), 5.0),
    ("P1 overhead p99 (ms)", "p1", ("overhead_ms", "p99"), 25.0),
    ("P2 relay p50 (ms)", "streams", ("relay_ms", "p50"), 2.0),
    ("P2 relay p99 (ms)", "streams", ("relay_ms", "p99"), 10.0),
    ("fan-out clients held", "fanout", ("clients_held",), None),
    ("fan-out API Redis connections", "fanout", ("api_redis_connections_max",), 16),
    ("fan-out RSS per client (KB)", "fanout", ("rss_per_client_kb",), 40.0),
    ("worker concurrency reached", "streams", ("worker_concurrency_reached",), None),
    ("worker CPU (%)", "streams", ("worker_cpu_percent",), None),
    ("generation pace p50 (tokens/s)", "streams", ("pace_tokens_per_s", "p50"), None),
    ("events/s (streams)", "streams", ("events_per_s",), None),
    ("events/s (fan-out)", "fanout", ("events_per_s",), None),
)


def machine() -> Figures:
    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "system": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


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
        met = "" if bound is None else ("ok" if value <= bound else "MISSED")
        out.add_row(label, f"{value}", "" if bound is None else f"≤ {bound}", met)
    return out


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
    }
    fig, ax = plt.subplots(figsize=(9, 5))
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
