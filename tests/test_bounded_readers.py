"""Readers cost the API bounded memory (contract §4): readers that never read, owed ~27 MB
each, while a normal reader is served; and a stalled reader is cut off after the send
timeout (it can resume).

The session is written straight through the append script with 0.9 MB events (the size
that once took the API from 56 MB to 1.5 GB); the worker would have split them.
"""

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from spool.api.auth import OPEN_TENANT
from spool.api.hub import MAX_BATCH_BYTES, Hub
from spool.shared.connections import open_redis
from spool.shared.ids import ZERO
from spool.shared.keys import Keys, SessionRef
from spool.shared.streams import Outgoing, StreamWriter
from spool_client.events import JobQueued, TextDelta, encoder
from tests.helpers import read_stream
from tests.procs import Api, service_env, until

pytestmark = pytest.mark.process

KEYS = Keys("boundedtest")
EVENTS, EVENT_CHARS = 30, 900_000  # ~27 MB owed to every reader
STALLED_READERS = 16
CUT_OFF = "disconnecting an SSE client that read nothing"
SEND_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def api(redis_url: str, log_dir: Path) -> Iterator[Api]:
    env = service_env(redis_url, key_prefix=KEYS.prefix, sse_send_timeout_s=str(SEND_TIMEOUT_S))
    server = Api(env, log_dir).start()
    yield server
    server.stop()


@pytest.fixture
async def big_session(redis_url: str, session_id: str) -> AsyncIterator[SessionRef]:
    """A session whose stream holds ~27 MB: one job of 30 text deltas of 0.9 MB."""
    s = SessionRef(OPEN_TENANT, session_id)
    redis = open_redis(redis_url, 2)
    writer = await queued_job(redis, s)
    for seq in range(1, EVENTS + 1):
        await append_delta(writer, s, seq, "x" * EVENT_CHARS)
    yield s
    await redis.aclose()


async def queued_job(redis: Redis, s: SessionRef) -> StreamWriter:
    """The session's record and a stream holding job j1's `job.queued`."""
    await redis.hset(KEYS.session(s), mapping={"tenant": s.tenant, "created_at_ms": 1})
    writer = StreamWriter(redis, KEYS, retention_s=600)
    queued = JobQueued(job_id="j1", session_id=s.session_id, model="simulated")
    await writer.append(s, "j1", 0, [Outgoing("job.queued", 0, encoder.encode(queued))])
    return writer


async def append_delta(writer: StreamWriter, s: SessionRef, seq: int, text: str) -> None:
    delta = TextDelta(job_id="j1", seq=seq, step=0, delta=text)
    await writer.append(s, "j1", 1, [Outgoing("text.delta", seq, encoder.encode(delta))])


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """Samples a process's RSS every 20 ms on a thread; `peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def stalled_reader(port: int, path: str) -> socket.socket:
    """A client that sends its request and then never reads a byte."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def drained(sock: socket.socket) -> int:
    """Read what the server sent until it closed the connection; the byte count."""
    sock.settimeout(30)
    total = 0
    while chunk := sock.recv(1 << 20):
        total += len(chunk)
    return total


@pytest.mark.timeout(120)
async def test_readers_that_never_read_cost_bounded_memory_and_are_cut_off(
    api: Api, big_session: SessionRef
) -> None:
    path = f"/v1/sessions/{big_session.session_id}/events"
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        # warm up: one full read, so the baseline includes what any first reader allocates
        status, events = await read_stream(http, path, max_events=EVENTS + 1)
        assert status == 200
        baseline = rss_bytes(api.pid)
        with PeakRss(api.pid) as rss:
            stalled = [stalled_reader(api.port, path) for _ in range(STALLED_READERS)]
            # meanwhile a normal reader gets the whole session
            status, events = await read_stream(http, path, max_events=EVENTS + 1)
            assert status == 200
            assert [e.event for e in events] == ["job.queued"] + ["text.delta"] * EVENTS
            assert all(len(e.json["delta"]) == EVENT_CHARS for e in events[1:])
            # the stalled readers are disconnected after the send timeout...
            await until(
                lambda: api.output().count(CUT_OFF) >= STALLED_READERS,
                60,
                "the stalled readers to be cut off",
            )
            sent = await asyncio.gather(*(asyncio.to_thread(drained, s) for s in stalled))
        growth = rss.peak - baseline
        print(f"API RSS: baseline {baseline / 2**20:.1f} MB, peak growth {growth / 2**20:.1f} MB")
        assert growth <= 100 * 2**20
        owed = EVENTS * EVENT_CHARS
        assert all(0 < n < owed for n in sent)  # cut off early, not served in full
        for sock in stalled:
            sock.close()
        # ...and a reader cut off can resume where it stopped: with the last whole id
        status, again = await read_stream(
            http, path, headers={"Last-Event-ID": events[5].id or ""}, max_events=EVENTS - 5
        )
        assert [e.id for e in again] == [e.id for e in events[6:]]


async def test_a_batch_from_redis_is_bounded_in_bytes(redis_url: str, session_id: str) -> None:
    """However many entries a read may return, it stops at about `MAX_BATCH_BYTES`."""
    s = SessionRef(OPEN_TENANT, session_id)
    redis = open_redis(redis_url, 2)
    writer = StreamWriter(redis, KEYS, retention_s=60)
    await writer.append(s, "j", 0, [Outgoing("job.queued", 0, b"{}")])
    big = msgspec.json.encode("y" * 100_000)
    for seq in range(1, 21):
        await writer.append(s, "j", 1, [Outgoing("text.delta", seq, big)])
    hub = Hub(redis, KEYS)
    try:
        async with hub.follow(s) as follower:
            cursor, batches = ZERO, []
            while batch := await follower.next_batch(cursor, 0.2):
                batches.append(batch)
                cursor = batch[-1].sid
        sizes = [sum(len(e.frame) for e in b) for b in batches]
        assert all(
            size <= MAX_BATCH_BYTES or len(b) == 1 for size, b in zip(sizes, batches, strict=True)
        )
        assert [e.kind for b in batches for e in b] == [b"job.queued"] + [b"text.delta"] * 20
        assert max(len(b) for b in batches) < 4  # 100 KB entries: a few per batch, not 256
    finally:
        await hub.aclose()
        await redis.aclose()


SMALL_EVENTS, SMALL_CHARS = 1500, 8_000  # ~12 MB in runs the hub writes to caught-up readers


def read_until(sock: socket.socket, marker: bytes) -> None:
    sock.settimeout(30)
    seen = b""
    while marker not in seen:
        chunk = sock.recv(1 << 16)
        assert chunk, "the server closed the connection"
        seen = seen[-len(marker) :] + chunk


@pytest.mark.timeout(120)
async def test_a_caught_up_reader_that_stops_reading_is_cut_off(
    api: Api, redis_url: str, session_id: str
) -> None:
    """A reader that has everything is written to by the hub itself (`Follower.attach`);
    when it stops reading it leaves that path and the send timeout applies, while a
    reader that keeps up gets the stream exactly."""
    s = SessionRef(OPEN_TENANT, session_id)
    redis = open_redis(redis_url, 2)
    writer = await queued_job(redis, s)
    path = f"/v1/sessions/{session_id}/events"
    cut_before = api.output().count(CUT_OFF)
    stalled = stalled_reader(api.port, path)
    await asyncio.to_thread(read_until, stalled, b"event: job.queued")  # caught up; stops
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        keeping_up = asyncio.create_task(read_stream(http, path, max_events=SMALL_EVENTS + 1))
        for seq in range(1, SMALL_EVENTS + 1):
            await append_delta(writer, s, seq, "y" * SMALL_CHARS)
        status, events = await keeping_up
    assert status == 200
    assert [e.json["seq"] for e in events[1:]] == list(range(1, SMALL_EVENTS + 1))
    await until(
        lambda: api.output().count(CUT_OFF) > cut_before, 60, "the stalled reader's cut-off"
    )
    sent = await asyncio.to_thread(drained, stalled)
    stalled.close()
    assert 0 < sent < SMALL_EVENTS * SMALL_CHARS  # cut off early, not served in full
    await redis.aclose()
