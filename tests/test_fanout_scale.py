"""The fan-out at scale: many clients on one API process, few Redis connections, exact
streams; slow clients that stop reading cost no memory and lose nothing.

Clients are raw asyncio SSE connections (`spool.cli.bench.wire`), cheap enough for
thousands in the test process. Redis connections are counted by Redis itself
(`CLIENT LIST`, by the name the API gives its pool: `spool-api-<pid>`).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import psutil
import pytest
import redis.asyncio as aredis

from spool.api.auth import OPEN_TENANT
from spool.api.state import api_client_name
from spool.cli.bench.clients import TERMINAL, raise_fd_limit
from spool.cli.bench.wire import Frame, SseConnection
from spool.shared.keys import Keys, SessionRef
from tests.helpers import submit
from tests.procs import Api

pytestmark = pytest.mark.process

KEYS = Keys()  # the stacks run with the default SPOOL_KEY_PREFIX

CLIENTS = 2_000
SESSIONS = 20
MAX_REDIS_CONNECTIONS = 16


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


async def wait_until(condition: Callable[[], Any], within_s: float, what: str) -> None:
    """Poll an (async or sync) condition until it holds; fail with `what` after `within_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what}")
        await asyncio.sleep(0.02)


async def job_done(http: httpx.AsyncClient, job_id: str) -> bool:
    return (await http.get(f"/v1/jobs/{job_id}")).json()["status"] == "completed"


async def stream_entries(redis_url: str, session_id: str) -> list[tuple[bytes, bytes, bytes]]:
    """(id, type, data) of every entry of the session's stream, from Redis itself."""
    client = aredis.Redis.from_url(redis_url)
    try:
        rows = await client.xrange(KEYS.stream(SessionRef(OPEN_TENANT, session_id)))
    finally:
        await client.aclose()
    return [(raw, fields[b"t"], fields[b"d"]) for raw, fields in rows]


@contextlib.asynccontextmanager
async def connection_watch(redis_url: str, pid: int) -> AsyncIterator[list[int]]:
    """Counts of the API's Redis connections, sampled every 20 ms while the block runs."""
    samples: list[int] = []
    client = aredis.Redis.from_url(redis_url)
    name = api_client_name(pid)

    async def sample() -> None:
        while True:
            listed = await client.client_list()
            samples.append(sum(1 for c in listed if c.get("name") == name))
            await asyncio.sleep(0.02)

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


async def collect(conn: SseConnection, terminals: int) -> list[Frame]:
    """Frames until the `terminals`-th terminal event."""
    got: list[Frame] = []
    seen = 0
    try:
        async for frame in conn.frames():
            got.append(frame)
            if frame.event in TERMINAL:
                seen += 1
                if seen == terminals:
                    break
    finally:
        conn.close()
    return got


def as_entries(frames: list[Frame]) -> list[tuple[bytes, bytes, bytes]]:
    return [(f.id, f.event, f.data) for f in frames]


@pytest.fixture(scope="module")
def fd_limit() -> int:
    return raise_fd_limit()


async def test_2000_clients_share_at_most_16_redis_connections_and_get_exact_streams(
    stack: Api, http: httpx.AsyncClient, redis_url: str, fd_limit: int
) -> None:
    assert fd_limit > CLIENTS + 200, "raise the open-files limit (ulimit -n)"
    sessions = [f"fan-{i}" for i in range(SESSIONS)]
    firsts = [await submit(http, session_id=s, model="simulated") for s in sessions]
    for job in firsts:
        await wait_until(lambda j=job: job_done(http, j["job_id"]), 30, "the first jobs")

    host, port = "127.0.0.1", stack.port
    opening = asyncio.Semaphore(200)

    async def client(session: str) -> list[Frame]:
        async with opening:
            conn = await SseConnection.open(host, port, f"/v1/sessions/{session}/events")
        return await collect(conn, terminals=2)  # the first job's, then the second's

    async with connection_watch(redis_url, stack.pid) as counts:
        tasks = [asyncio.create_task(client(sessions[i % SESSIONS])) for i in range(CLIENTS)]
        api = psutil.Process(stack.pid)
        await wait_until(
            lambda: len([c for c in api.net_connections("tcp") if c.laddr.port == port]) >= CLIENTS,
            60,
            "every client to be connected",
        )
        params = {"text": words(60), "tokens_per_second": 600, "ttft_ms": 0}
        seconds = [
            await submit(http, session_id=s, model="simulated", parameters=params) for s in sessions
        ]
        received = await asyncio.wait_for(asyncio.gather(*tasks), 90)
    for job in seconds:
        assert await job_done(http, job["job_id"])

    print(f"\nAPI Redis connections with {CLIENTS} clients: max {max(counts)}")
    assert counts
    assert 0 < max(counts) <= MAX_REDIS_CONNECTIONS, counts
    expected = {s: await stream_entries(redis_url, s) for s in sessions}
    for i, frames in enumerate(received):
        session = sessions[i % SESSIONS]
        assert as_entries(frames) == expected[session], f"client {i} of {session}"
    texts = [
        "".join(f.data.decode() for f in frames if f.event == b"text.delta") for frames in received
    ]
    assert all(words(60).split()[-1] in text for text in texts)


SLOW_CLIENTS = 16
SLOW_TEXT_WORDS = 30_000  # one event each: ~3.5 MB of events that every slow client owes
RSS_BOUND = 24 * 2**20  # well below the ~55 MB that buffering per client would take


async def test_slow_consumers_get_everything_while_the_api_memory_stays_bounded(
    stack: Api, http: httpx.AsyncClient, redis_url: str
) -> None:
    session = "slow-readers"
    first = await submit(http, session_id=session, model="simulated")
    await wait_until(lambda: job_done(http, first["job_id"]), 30, "the first job")
    path = f"/v1/sessions/{session}/events"
    slow = [
        await SseConnection.open("127.0.0.1", stack.port, path, rcvbuf=4096)
        for _ in range(SLOW_CLIENTS)
    ]  # they read the response head, then nothing until the job is over
    fast = asyncio.create_task(
        collect(await SseConnection.open("127.0.0.1", stack.port, path), terminals=2)
    )
    api = psutil.Process(stack.pid)
    rss_before = api.memory_info().rss
    peak = rss_before

    def sample_rss() -> None:
        nonlocal peak
        peak = max(peak, api.memory_info().rss)

    # one event per token, even on a machine so loaded that the stream falls behind: the
    # test needs the volume (adaptive coalescing would merge the deltas that wait)
    params = {"text": words(SLOW_TEXT_WORDS), "tokens_per_second": 10**6, "behind_ms": -1}
    big = await submit(http, session_id=session, model="simulated", parameters=params)

    async def done_and_sampled() -> bool:
        sample_rss()
        return await job_done(http, big["job_id"])

    await wait_until(done_and_sampled, 90, "the big job to complete")
    await asyncio.wait_for(fast, 60)  # a reader keeping up is served meanwhile
    sample_rss()
    pending = sum(len(d) for _, _, d in await stream_entries(redis_url, session))
    print(
        f"\nAPI RSS {rss_before / 2**20:.1f} MB before, peak {peak / 2**20:.1f} MB while "
        f"{SLOW_CLIENTS} clients did not read {pending / 2**20:.1f} MB each"
    )
    assert peak - rss_before < RSS_BOUND
    assert SLOW_CLIENTS * pending > 2 * RSS_BOUND  # the bound means something

    expected = await stream_entries(redis_url, session)
    results = await asyncio.wait_for(
        asyncio.gather(*(collect(conn, terminals=2) for conn in slow)), 90
    )
    output = (await http.get(f"/v1/jobs/{big['job_id']}")).json()["output_text"]
    assert output == words(SLOW_TEXT_WORDS)
    for frames in [*results, fast.result()]:
        assert as_entries(frames) == expected
