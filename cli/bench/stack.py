"""The processes under test: spawned on free ports (`--spawn`) or found by their ports.

Also the probes the report needs from outside those processes: RSS and CPU time
(psutil), and the Redis connections an API process holds (`CLIENT LIST`, by the
connection name the API gives its pool, `spool-api-<pid>`).
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import redis

from spool.cli.embedded import EmbeddedRedis, free_port
from spool.shared.keys import Keys


def pid_listening_on(port: int) -> int | None:
    """The process serving `port` on this machine, if we may see it."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                pid: int | None = conn.pid
                return pid
    except psutil.AccessDenied:
        pass
    return None


def wait_http(url: str, procs: list[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a process exited while waiting for {url}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def wait_worker(redis_url: str, procs: list[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    """Until a worker listens for wake-ups (it imports the provider SDKs first: seconds)."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a process exited while waiting for the worker")
            counts: list[tuple[bytes, int]] = client.pubsub_numsub(Keys().wake_channel)  # type: ignore[assignment]
            if counts and counts[0][1] > 0:
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise RuntimeError(f"no worker listened within {timeout:.0f}s")


class Stack:
    """Where the API, the baseline, the worker and Redis are, and their pids when known."""

    def __init__(
        self,
        api_url: str,
        baseline_url: str,
        redis_url: str,
        *,
        pids: dict[str, int | None],
        procs: list[subprocess.Popen[bytes]] | None = None,
        embedded: EmbeddedRedis | None = None,
    ) -> None:
        self.api_url = api_url
        self.baseline_url = baseline_url
        self.redis_url = redis_url
        self.api_pid = pids.get("api")
        self.baseline_pid = pids.get("baseline")
        self.worker_pid = pids.get("worker")
        self._procs = procs or []
        self._redis = embedded

    @classmethod
    def attach(
        cls, api_url: str, baseline_url: str, redis_url: str, worker_pid: int | None
    ) -> "Stack":
        """Running processes: the API's and the baseline's pids are found by their ports."""
        pids = {
            "api": pid_listening_on(urlsplit(api_url).port or 80),
            "baseline": pid_listening_on(urlsplit(baseline_url).port or 80),
            "worker": worker_pid,
        }
        return cls(api_url, baseline_url, redis_url, pids=pids)

    @classmethod
    def spawn(
        cls, worker_concurrency: int, log_dir: Path | None = None, python: str | None = None
    ) -> "Stack":
        """An embedded Redis, one API, one worker and the baseline, on free ports, run by
        `python` (default: this interpreter)."""
        log_dir = log_dir or Path(tempfile.mkdtemp(prefix="spool-bench-"))
        embedded = EmbeddedRedis(log_dir / "redis", appendonly=False)
        embedded.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
        # the benchmark's clients are one tenant standing in for many: no per-tenant caps
        env.update(
            SPOOL_REDIS_URL=embedded.url,
            SPOOL_LOG_LEVEL="WARNING",
            SPOOL_TENANT_MAX_ACTIVE_JOBS="1000000",
            SPOOL_TENANT_MAX_RUNNING="1000000",
            SPOOL_TENANT_MAX_STREAMS="1000000",
        )
        api_port, base_port = free_port(), free_port()
        commands = {
            "api": ["-m", "spool.api", "--port", str(api_port)],
            "worker": ["-m", "spool.worker", "--concurrency", str(worker_concurrency)],
            "baseline": ["-m", "spool.worker.baseline", "--port", str(base_port)],
        }
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for name, args in commands.items():
            with (log_dir / f"{name}.log").open("ab") as log:
                procs[name] = subprocess.Popen(
                    [python or sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT
                )
        stack = cls(
            f"http://127.0.0.1:{api_port}",
            f"http://127.0.0.1:{base_port}",
            embedded.url,
            pids={name: p.pid for name, p in procs.items()},
            procs=list(procs.values()),
            embedded=embedded,
        )
        try:
            wait_http(f"{stack.api_url}/readyz", stack._procs)
            wait_http(f"{stack.baseline_url}/healthz", stack._procs)
            wait_worker(embedded.url, stack._procs)
        except BaseException:
            stack.close()
            raise
        return stack

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._redis is not None:
            self._redis.stop()

    def api_host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.api_url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    # -- probes ---------------------------------------------------------------------

    def api_redis_connections(self) -> int | None:
        """Connections the API process holds on Redis, counted by Redis itself."""
        if self.api_pid is None:
            return None
        name = f"spool-api-{self.api_pid}"
        client = redis.Redis.from_url(self.redis_url)
        try:
            listed: list[dict[str, str]] = client.client_list()  # type: ignore[assignment]
            return sum(1 for c in listed if c.get("name") == name)
        finally:
            client.close()

    def redis_clients(self) -> int:
        client = redis.Redis.from_url(self.redis_url)
        try:
            info: dict[str, int] = client.info("clients")  # type: ignore[assignment]
            return int(info["connected_clients"])
        finally:
            client.close()


def rss(pid: int | None) -> int | None:
    try:
        return psutil.Process(pid).memory_info().rss if pid else None
    except psutil.Error:
        return None


def cpu_seconds(pid: int | None) -> float | None:
    try:
        times = psutil.Process(pid).cpu_times() if pid else None
    except psutil.Error:
        return None
    return times.user + times.system if times else None
