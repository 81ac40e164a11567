"""The `submissions` phase: jobs per second one API process accepts while it streams.

`submission_streams` clients first follow generations (`POST /v1/stream` at
`submission_stream_tps`); once every one of them is connected, `submissions` jobs are
posted to `POST /v1/jobs` over `submission_connections` keep-alive connections, each a
new session, and the phase reports accepted jobs per second and the POST latencies.
Those jobs then run (one token each); the phase waits for the queue to drain so that
the next phase starts clean.
"""

import asyncio
import json
import time
from typing import Any

import httpx

from spool.cli.bench import stats
from spool.cli.bench.clients import Spec
from spool.cli.bench.generators import Live, run_generators
from spool.cli.bench.meter import Meter
from spool.cli.bench.phases import Figures, Options, Progress, job_body
from spool.cli.bench.stack import Stack

DRAIN_S = 120.0


class Keepalive:
    """One HTTP/1.1 keep-alive connection posting JSON bodies (status line + sized body)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> "Keepalive":
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        self.writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        response = await self.reader.readuntil(b"\r\n\r\n")
        status = int(response.split(b" ", 2)[1])
        length = 0
        for line in response.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def _burst(
    host: str, port: int, bodies: list[bytes], connections: int
) -> tuple[list[float], list[str], list[str]]:
    """Post every body; the latencies (ms), the accepted job ids, the errors."""
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    ).encode()
    queue = list(reversed(bodies))
    latencies: list[float] = []
    jobs: list[str] = []
    errors: list[str] = []

    async def poster() -> None:
        conn = await Keepalive.open(host, port)
        try:
            while queue:
                body = queue.pop()
                sent = time.perf_counter()
                status, answer = await conn.post(head, body)
                latencies.append((time.perf_counter() - sent) * 1000)
                if status == 202:
                    jobs.append(json.loads(answer)["job_id"])
                else:
                    errors.append(f"HTTP {status}: {answer[:200]!r}")
        finally:
            conn.close()

    await asyncio.gather(*(poster() for _ in range(connections)))
    return latencies, jobs, errors


def _drain(stack: Stack, jobs: list[str]) -> bool:
    """Wait (bounded) until the last submitted jobs have finished."""
    deadline = time.monotonic() + DRAIN_S
    with httpx.Client(base_url=stack.api_url, timeout=30) as http:
        for job in jobs[-20:]:
            while http.get(f"/v1/jobs/{job}").json().get("status") not in ("completed", "failed"):
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.1)
    return True


def submissions(stack: Stack, opts: Options, progress: Progress) -> Figures:
    tokens = opts.submission_stream_tokens
    stream_body = json.dumps(job_body(tokens, opts.submission_stream_tps)).encode()
    specs = [Spec("POST", "/v1/stream", stream_body) for _ in range(opts.submission_streams)]
    bodies = [
        json.dumps(job_body(1, 1000.0, session_id=f"bench-sub-{time.time_ns()}-{i}")).encode()
        for i in range(opts.submissions)
    ]
    host, port = stack.api_host_port()
    out: Figures = {}

    def tick(live: Live) -> None:
        progress("submit", live)
        if "jobs_per_s" in out or live.connected + live.done + live.failed < live.total:
            return
        out["streams_open"] = live.connected
        meter = Meter(stack)
        started = time.perf_counter()
        latencies, jobs, errors = asyncio.run(
            _burst(host, port, bodies, opts.submission_connections)
        )
        wall = time.perf_counter() - started
        out["jobs_per_s"] = round(len(jobs) / wall, 1)
        out["accepted"] = len(jobs)
        out["seconds"] = round(wall, 3)
        out["post_ms"] = stats.summary(latencies)
        out["cpu_per_job"] = meter.split(len(jobs))
        out["errors"] = {"count": len(errors), "first": errors[:3]}
        out["_jobs"] = jobs

    results, _ = run_generators(
        stack.api_url, specs, processes=opts.processes, open_limit=128, on_tick=tick
    )
    jobs: list[Any] = out.pop("_jobs", [])
    return {
        "streams": opts.submission_streams,
        "stream_tokens_per_second": opts.submission_stream_tps,
        "submissions": opts.submissions,
        "connections": opts.submission_connections,
        **out,
        "stream_relay_ms": stats.summary(stats.relay_ms(results)),
        "stream_errors": len(stats.errors(results)),
        "drained": _drain(stack, jobs),
    }
