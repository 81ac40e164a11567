"""`spool bench`: the load generator and latency report (docs/benchmarks.md)."""

from pathlib import Path
from typing import Any

import click

from spool.cli.client import console, url_option
from spool.shared.settings import DEFAULT_REDIS_URL


@click.command()
@click.option("--spawn", is_flag=True, help="start an embedded Redis, an API, a worker, a baseline")
@click.option(
    "--python",
    "python",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="with --spawn: the interpreter that runs the stack (another checkout's venv: "
    "the same load against other code, for a before/after on one machine)",
)
@url_option
@click.option("--baseline-url", default="http://127.0.0.1:8100", show_default=True)
@click.option("--redis-url", default=DEFAULT_REDIS_URL, show_default=True)
@click.option("--worker-pid", type=int, default=None, help="to report the worker's CPU")
@click.option(
    "--phase",
    "phases",
    multiple=True,
    type=click.Choice(["p1", "streams", "fanout", "capacity", "density", "submissions"]),
)
@click.option("--p1-jobs", default=200, show_default=True)
@click.option(
    "--p1-concurrency", default=1, show_default=True, help="P1 jobs in flight (1: pure latency)"
)
@click.option("--streams", default=1000, show_default=True, help="concurrent generations")
@click.option("--tokens", default=100, show_default=True, help="tokens per generation")
@click.option("--tps", default=50.0, show_default=True, help="tokens per second")
@click.option("--clients", default=10_000, show_default=True, help="fan-out SSE clients")
@click.option("--sessions", default=100, show_default=True, help="fan-out sessions")
@click.option("--fanout-tokens", default=60, show_default=True, help="tokens per fan-out job")
@click.option(
    "--fanout-tps", default=6.0, show_default=True, help="fan-out tokens per second per session"
)
@click.option("--capacity-start", default=200, show_default=True, help="streams, first step")
@click.option("--capacity-max", default=2000, show_default=True, help="streams, last step")
@click.option("--capacity-tokens", default=500, show_default=True, help="tokens per step's stream")
@click.option("--density-streams", default=1000, show_default=True, help="generations at once")
@click.option("--submissions", default=2000, show_default=True, help="jobs posted in a burst")
@click.option("--submission-streams", default=1000, show_default=True, help="streams meanwhile")
@click.option("--processes", default=2, show_default=True, help="load-generator processes")
@click.option("--out", default="bench.json", show_default=True, type=click.Path(path_type=Path))
@click.option("--plot", default="bench.png", show_default=True, type=click.Path(path_type=Path))
def bench(**kw: Any) -> None:
    """Load and latency benchmark against Spool and the direct baseline (docs/benchmarks.md)."""
    try:  # imported here: only `spool bench` needs it, and its extra
        from spool.cli import bench as run_bench
    except ModuleNotFoundError as exc:
        raise click.ClickException(
            f"spool bench needs the bench extra ({exc.name} is missing): "
            "pip install './clients/python' '.[bench]'"
        ) from None

    opts = run_bench.Options(
        p1_jobs=kw["p1_jobs"],
        p1_concurrency=kw["p1_concurrency"],
        streams=kw["streams"],
        stream_tokens=kw["tokens"],
        tokens_per_second=kw["tps"],
        fanout_clients=kw["clients"],
        fanout_sessions=kw["sessions"],
        fanout_tokens=kw["fanout_tokens"],
        fanout_tokens_per_second=kw["fanout_tps"],
        capacity_start=kw["capacity_start"],
        capacity_max=kw["capacity_max"],
        capacity_tokens=kw["capacity_tokens"],
        density_streams=kw["density_streams"],
        submissions=kw["submissions"],
        submission_streams=kw["submission_streams"],
        processes=kw["processes"],
    )
    machine = run_bench.report.machine()  # before the stack starts: the yardstick alone
    if kw["spawn"]:
        most = max(100, opts.streams, opts.capacity_max, opts.density_streams)
        stack = run_bench.Stack.spawn(
            worker_concurrency=most + opts.submission_streams, python=kw["python"]
        )
    else:
        stack = run_bench.Stack.attach(
            kw["url"], kw["baseline_url"], kw["redis_url"], kw["worker_pid"]
        )
    try:
        selected = list(kw["phases"]) or list(run_bench.PHASES)
        run_bench.run(stack, opts, selected, kw["out"], kw["plot"], console, machine)
    finally:
        stack.close()
