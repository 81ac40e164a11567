"""Real Spool processes for tests: `python -m spool.api` and `python -m spool.worker` on free
ports, and polling helpers: `wait_for` for plain tests, `until` (and `started`/`stopped`)
for async tests, which must never block their event loop."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx

from spool.cli.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


async def until(
    condition: Callable[[], bool | Awaitable[bool]], seconds: float, what: str, step: float = 0.02
) -> None:
    """`wait_for` for async tests: polls `condition` (plain or async) without blocking the loop."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        done = condition()
        if done if isinstance(done, bool) else await done:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(step)


P = TypeVar("P", bound="Proc")


async def started(proc: P) -> P:
    """`proc.start()` from an async test: waits for readiness in a thread, not in the loop."""
    return await asyncio.to_thread(proc.start)


async def stopped(proc: "Proc") -> int | None:
    return await asyncio.to_thread(proc.stop)


class Proc:
    """A child process whose output goes to a log file, shown when a test fails."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> "Proc":
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(
                [sys.executable, *self.args],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def service_env(redis_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env["SPOOL_REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in settings.items():
        env[f"SPOOL_{key.upper()}"] = value
    return env


class Api(Proc):
    """`python -m spool.api` on a free port, or on `port` (to restart a killed API in its place)."""

    def __init__(
        self, env: dict[str, str], log_dir: Path, *extra: str, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        super().__init__(
            ["-m", "spool.api", "--port", str(self.port), *extra],
            env,
            log_dir / f"api-{self.port}.log",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(
        self, read_s: float = 30.0, headers: dict[str, str] | None = None
    ) -> httpx.AsyncClient:
        """An HTTP client of this API: 10 s to connect, `read_s` for a response to go on."""
        return httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(10, read=read_s)
        )

    def start(self) -> "Api":
        super().start()

        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"API exited during start-up:\n{self.output()}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 30, "the API to become ready", step=0.05)
        return self


class Worker(Proc):
    count = 0

    def __init__(self, env: dict[str, str], log_dir: Path, *extra: str) -> None:
        Worker.count += 1
        self.ready_file = log_dir / f"worker-{Worker.count}.ready"
        args = ["-m", "spool.worker", "--ready-file", str(self.ready_file), *extra]
        super().__init__(args, env, log_dir / f"worker-{Worker.count}.log")

    def start(self) -> "Worker":
        self.ready_file.unlink(missing_ok=True)
        super().start()
        ready = self.ready_file.exists
        wait_for(lambda: ready() or not self.alive(), 30, "the worker to take jobs")
        if not self.alive():
            raise AssertionError(f"worker exited during start-up:\n{self.output()}")
        return self
