"""`spool dev`: Redis (embedded if none is reachable), the API and workers, in one go."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx

from spool.cli.client import err_console
from spool.cli.embedded import EmbeddedRedis, EmbeddedUnavailable, reachable
from spool.shared.settings import DEFAULT_REDIS_URL, default_model_for


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


@click.command()
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
