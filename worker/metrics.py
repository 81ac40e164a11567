"""A worker process's metrics (contract §11), served on `SPOOL_WORKER_METRICS_PORT`.

One registry per process (see `shared/metrics.py`); every metric is listed in
docs/operations.md. Counters move once per job or per append round, not per event.

The server is a few lines of asyncio rather than prometheus-client's threaded
`start_http_server`, so that the queue is read on the worker's own loop and connections,
at scrape time only.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis

from spool.shared.keys import Keys
from spool.shared.metrics import QueueGauges, exposition, new_registry

log = logging.getLogger(__name__)

REGISTRY = new_registry()

JOBS_FINISHED = Counter(
    "spool_jobs_finished", "Jobs ended, by terminal status", ["status"], registry=REGISTRY
)
TIME_TO_FIRST_TOKEN = Histogram(
    "spool_time_to_first_token_seconds",
    "From the job's creation to its first delta (completed jobs)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "spool_job_duration_seconds",
    "From the job's start (by a worker) to its end",
    ["status"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
EVENTS_APPENDED = Counter(
    "spool_events_appended", "Events written to Redis streams", registry=REGISTRY
)
APPEND_SECONDS = Histogram(
    "spool_redis_append_seconds",
    "One pipelined append round to the stream Redis",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
    registry=REGISTRY,
)
JOBS_RUNNING = Gauge("spool_jobs_running", "Jobs this process runs now", registry=REGISTRY)
QUEUE = QueueGauges(REGISTRY)

MAX_REQUEST_BYTES = 8192
READ_TIMEOUT_S = 5.0


class MetricsServer:
    """`GET /metrics` on `host:port`, answered from the worker's event loop."""

    def __init__(self, redis: Redis, keys: Keys, running: Callable[[], int]) -> None:
        self.redis = redis
        self.keys = keys
        self.running = running
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        try:
            self._server = await asyncio.start_server(
                self._handle, host, port, limit=MAX_REQUEST_BYTES
            )
        except OSError as exc:  # the worker still works; say why it has no metrics
            log.error("worker metrics not served on %s:%d: %s", host, port, exc)
            return
        log.info("worker metrics on http://%s:%d/metrics", host, port)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path = [*request_line.split(" "), "", ""][:2]
            if method == "GET" and path.split("?")[0] == "/metrics":
                body, content_type = await self.render(_accept(header_lines))
                await self._respond(writer, b"200 OK", body, content_type)
            else:
                await self._respond(writer, b"404 Not Found", b"not found\n", "text/plain")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def render(self, accept: str = "") -> tuple[bytes, str]:
        JOBS_RUNNING.set(self.running())
        await QUEUE.refresh(self.redis, self.keys)
        return exposition(REGISTRY, accept)

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter, status: bytes, body: bytes, content_type: str
    ) -> None:
        writer.write(
            b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (status, content_type.encode(), len(body))
        )
        writer.write(body)
        await writer.drain()


def _accept(header_lines: list[str]) -> str:
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "accept":
            return value.strip()
    return ""
