"""The `spool` command (contract §1).

The CLI composes processes, it does not import them: `spool api` and `spool worker`
become `python -m api` / `python -m worker`, and `spool dev` supervises those plus an
embedded Redis when none is reachable. `submit` and `tail` are HTTP clients.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx
import msgspec
from rich.console import Console

from spool.cli.embedded import EmbeddedRedis, EmbeddedUnavailable, reachable
from spool.cli.render import Renderer
from spool.shared.settings import DEFAULT_REDIS_URL, default_model_for
from spool_client import ClientError, SpoolClient, StreamInterrupted

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@click.group()
def main() -> None:
    """Spool: durable, resumable LLM streaming."""


def _exec_module(module: str, args: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def api(ctx: click.Context) -> None:
    """The HTTP service: [--port] [--host] [--role all|jobs|events] [--allow-open]."""
    _exec_module("api", ctx.args)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def worker(ctx: click.Context) -> None:
    """One worker process: [--concurrency N]."""
    _exec_module("worker", ctx.args)


def _redis_for_dev(data_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    wanted = os.environ.get("SPOOL_REDIS_URL", "")
    if wanted and wanted != "embedded":
        return wanted, None
    if not wanted and reachable(DEFAULT_REDIS_URL):
        return DEFAULT_REDIS_URL, None
    embedded = EmbeddedRedis(data_dir / "redis", port=_env_port("SPOOL_EMBEDDED_REDIS_PORT"))
    try:
        embedded.start()
    except EmbeddedUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    return embedded.url, embedded


def _env_port(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def _wait_ready(url: str, procs: list[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise click.ClickException("a Spool process exited during start-up; see its log above")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise click.ClickException(f"the API at {url} did not become ready in {timeout:.0f}s")


@main.command()
@click.option("--port", default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--workers", default=1, show_default=True, help="worker processes")
@click.option("--data-dir", default=".spool", show_default=True, type=click.Path(path_type=Path))
def dev(port: int, host: str, workers: int, data_dir: Path) -> None:
    """Redis (embedded if none is reachable), the API and worker processes, in one go."""
    redis_url, embedded = _redis_for_dev(data_dir)
    env = {**os.environ, "SPOOL_REDIS_URL": redis_url}
    model = default_model_for(env)
    if model is not None:
        env["SPOOL_DEFAULT_MODEL"] = model
        err_console.print(f"default model: {model} (from the API key in the environment)")
    where = "embedded, data in " + str(data_dir / "redis") if embedded else "existing"
    click.echo(f"redis: {redis_url} ({where})", err=True)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "spool.api", "--port", str(port), "--host", host], env=env
        )
    ]
    procs += [
        subprocess.Popen([sys.executable, "-m", "spool.worker"], env=env) for _ in range(workers)
    ]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        url = f"http://{host}:{port}"
        _wait_ready(url, procs)
        click.echo(f"demo page: {url}/")
        click.echo(f"Spool ready on {url} (redis {redis_url}, {workers} worker(s)); Ctrl-C stops")
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if embedded is not None:
            embedded.stop()


def _base_url(url: str | None) -> str:
    return url or os.environ.get("SPOOL_URL", "http://127.0.0.1:8000")


def _api_key() -> str | None:
    return os.environ.get("SPOOL_API_KEY") or None


async def _follow(
    client: SpoolClient,
    renderer: Renderer,
    session: str,
    job: str | None,
    start: str | None,
) -> int:
    """Print the stream; the exit status: 0 completed, 1 failed or cancelled, 3 interrupted."""
    status = 0
    try:
        async for event in client.events(session, job_id=job, last_event_id=start):
            renderer.show(event)
            if event.type in ("job.failed", "job.cancelled"):
                status = 1
    except StreamInterrupted as exc:
        renderer.note(f"[{exc}; resume with: spool tail {session} --from {exc.last_event_id}]")
        return 3
    return status


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`key=JSON` pairs (a value that is not JSON is taken as a string)."""
    params: dict[str, Any] = {}
    for item in pairs:
        key, _, raw = item.partition("=")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


_URL_HELP = "service URL (default $SPOOL_URL or http://127.0.0.1:8000)"


@main.command()
@click.argument("prompt")
@click.option("--model", "-m", default=None, help="e.g. simulated, anthropic:claude-sonnet-4-5")
@click.option("--session", "-s", default=None, help="session id (default: a new one)")
@click.option("--follow", "-f", is_flag=True, help="stream the output, resuming after drops")
@click.option("--param", "-p", multiple=True, help="a model parameter, key=JSON-value")
@click.option("--json", "as_json", is_flag=True, help="one JSON event per line")
@click.option("--url", default=None, help=_URL_HELP)
def submit(
    prompt: str,
    model: str | None,
    session: str | None,
    follow: bool,
    param: tuple[str, ...],
    as_json: bool,
    url: str | None,
) -> None:
    """Enqueue a job; with --follow, stream its output to the terminal."""

    async def run() -> int:
        async with SpoolClient(_base_url(url), _api_key()) as client:
            accepted = await client.submit(
                prompt, model=model, session_id=session, parameters=_params(param) or None
            )
            if not follow:
                print(json.dumps(msgspec.to_builtins(accepted)))
                return 0
            err_console.print(
                f"job {accepted.job_id} in session {accepted.session_id}", style="dim"
            )
            renderer = Renderer(sys.stdout, as_json=as_json)
            return await _follow(client, renderer, accepted.session_id, accepted.job_id, None)

    sys.exit(_run_client(run))


@main.command()
@click.argument("session")
@click.option("--from", "start", default=None, help="resume after this event id")
@click.option("--job", default=None, help="only this job's events, ending with it")
@click.option("--json", "as_json", is_flag=True, help="one JSON event per line")
@click.option("--url", default=None, help=_URL_HELP)
def tail(session: str, start: str | None, job: str | None, as_json: bool, url: str | None) -> None:
    """Print a session's events as they arrive (Ctrl-C stops)."""

    async def run() -> int:
        async with SpoolClient(_base_url(url), _api_key()) as client:
            renderer = Renderer(sys.stdout, as_json=as_json, headers=True)
            return await _follow(client, renderer, session, job, start)

    sys.exit(_run_client(run))


def _run_client(run: Any) -> int:
    try:
        result: int = asyncio.run(run())
        return result
    except ClientError as exc:
        err_console.print(f"error: {exc}", style="red")
        return 2
    except KeyboardInterrupt:
        return 130


@main.command()
@click.option("--spawn", is_flag=True, help="start an embedded Redis, an API, a worker, a baseline")
@click.option("--url", default=None, help=_URL_HELP)
@click.option("--baseline-url", default="http://127.0.0.1:8100", show_default=True)
@click.option("--redis-url", default=DEFAULT_REDIS_URL, show_default=True)
@click.option("--worker-pid", type=int, default=None, help="to report the worker's CPU")
@click.option("--phase", "phases", multiple=True, type=click.Choice(["p1", "streams", "fanout"]))
@click.option("--p1-jobs", default=200, show_default=True)
@click.option(
    "--p1-concurrency", default=1, show_default=True, help="P1 jobs in flight (1: pure latency)"
)
@click.option("--streams", default=1000, show_default=True, help="concurrent generations")
@click.option("--tokens", default=100, show_default=True, help="tokens per generation")
@click.option("--tps", default=50.0, show_default=True, help="tokens per second")
@click.option("--clients", default=10_000, show_default=True, help="fan-out SSE clients")
@click.option("--sessions", default=100, show_default=True, help="fan-out sessions")
@click.option("--fanout-tokens", default=20, show_default=True, help="tokens per fan-out job")
@click.option("--fanout-tps", default=10.0, show_default=True, help="fan-out tokens per second")
@click.option("--processes", default=2, show_default=True, help="load-generator processes")
@click.option("--out", default="bench.json", show_default=True, type=click.Path(path_type=Path))
@click.option("--plot", default="bench.png", show_default=True, type=click.Path(path_type=Path))
def bench(**kw: Any) -> None:
    """Load and latency benchmark against Spool and the direct baseline (docs/benchmarks.md)."""
    from spool.cli import bench as run_bench  # imported here: only `spool bench` needs it

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
        processes=kw["processes"],
    )
    if kw["spawn"]:
        stack = run_bench.Stack.spawn(worker_concurrency=max(100, kw["streams"]))
    else:
        url = _base_url(kw["url"])
        stack = run_bench.Stack.attach(url, kw["baseline_url"], kw["redis_url"], kw["worker_pid"])
    try:
        selected = list(kw["phases"]) or list(run_bench.PHASES)
        run_bench.run(stack, opts, selected, kw["out"], kw["plot"], console)
    finally:
        stack.close()
