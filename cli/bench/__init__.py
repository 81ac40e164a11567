"""`spool bench`: the load generator and latency report (contract §1, issue 4).

`run()` drives a running service (or one it spawns: an embedded Redis, one API, one
worker and the direct baseline, `worker/baseline.py`) with the `simulated` model,
shows a progress bar, and writes the figures as JSON and a PNG latency plot.
"""

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from spool.cli.bench import capacity, phases, report, submissions
from spool.cli.bench.clients import raise_fd_limit
from spool.cli.bench.generators import Live
from spool.cli.bench.phases import Options
from spool.cli.bench.stack import Stack

__all__ = ["Options", "Stack", "run"]

PHASES = {
    "p1": phases.p1,
    "streams": phases.streams,
    "fanout": phases.fanout,
    "capacity": capacity.capacity,
    "density": capacity.density,
    "submissions": submissions.submissions,
}


def run(
    stack: Stack,
    opts: Options,
    selected: list[str],
    out: Path,
    plot: Path | None,
    console: Console,
    machine: report.Figures | None = None,
) -> report.Figures:
    """Run the `selected` phases; `machine`: `report.machine()` taken before the stack
    started (else now)."""
    raise_fd_limit()
    figures: report.Figures = {"machine": machine or report.machine()}
    figures["options"] = {f: getattr(opts, f) for f in opts.__struct_fields__}
    figures["processes"] = {
        "api_pid": stack.api_pid,
        "worker_pid": stack.worker_pid,
        "baseline_pid": stack.baseline_pid,
    }
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} done · {task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(label: str, live: Live) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=live.total, status="")
            status = f"{live.connected} open · {live.events} events · {live.failed} failed"
            bar.update(tasks[label], completed=live.done, status=status)

        for name in selected:
            started = time.monotonic()
            figures[name] = PHASES[name](stack, opts, progress)
            figures[name]["seconds"] = round(time.monotonic() - started, 2)
    report.write_json(figures, out)
    console.print(report.table(figures))
    console.print(f"figures: {out}")
    if plot is not None and report.write_plot(figures, plot, console):
        console.print(f"plot: {plot}")
    return figures
