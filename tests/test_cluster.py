"""Streams on a real 3-primary Redis Cluster (the queue Redis stays standalone): sessions
spread over the shards, exact resume across API processes, bounded connections."""

import asyncio
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.crc import key_slot

from spool.api.subscriber import ShardSubscriber
from spool.cli.embedded import EmbeddedRedis
from spool.shared.cluster import ClusterRedis
from spool.shared.connections import open_streams
from spool.shared.keys import Keys, SessionRef
from spool.shared.streams import Outgoing, StreamWriter
from tests.conftest import STACK_SETTINGS
from tests.helpers import follow_job, read_stream, submit
from tests.procs import Api, Worker, service_env
from tests.sse import Frame, frames
from tests.topology import LocalCluster, client_list

pytestmark = pytest.mark.process

MAX_CONNECTIONS = 4  # SPOOL_REDIS_MAX_CONNECTIONS: the pool bound, per node
WORDS = ["Durable", "streams", "keep", "every", "token", "of", "an", "answer", "🚀", "流式"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster"), primaries=3) as running:
        yield running


@pytest.fixture(scope="module")
def queue_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test's own standalone queue Redis: on the suite's shared one, the session-wide
    stack's worker would take these jobs and write their streams off the cluster."""
    with EmbeddedRedis(tmp_path_factory.mktemp("queue"), appendonly=False) as server:
        yield server.url


def wire(events: list[Frame]) -> list[tuple[str | None, str | None, str | None]]:
    return [(e.id, e.event, e.data) for e in events]


async def cut_and_resume(
    first: httpx.AsyncClient, other: httpx.AsyncClient, accepted: dict[str, Any], cut: int
) -> None:
    """Read `cut` events on one API, resume on the other with Last-Event-ID, and compare
    the concatenation with an uninterrupted read."""
    head_status, head = await read_stream(first, accepted["events_url"], max_events=cut)
    assert head_status == 200
    assert len(head) == cut
    tail_status, tail = await read_stream(
        other, accepted["events_url"], headers={"Last-Event-ID": str(head[-1].id)}
    )
    assert tail_status == 200
    whole = await follow_job(first, accepted)
    assert wire(head + tail) == wire(whole)
    assert whole[-1].event == "job.completed"


async def hold_open(client: httpx.AsyncClient, session_id: str) -> None:
    """Follow a session (no job_id: the response stays open) until cancelled."""
    async with client.stream("GET", f"/v1/sessions/{session_id}/events") as response:
        assert response.status_code == 200
        async for _ in response.aiter_raw():
            pass


async def wait_for_subscriptions(cluster: LocalCluster, names: set[str], count: int) -> None:
    """Each API holds exactly one sharded-subscriber connection per node, and between them
    they subscribe to `count` channels (all of its followed sessions)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        rows = [c for port in cluster.ports for c in client_list(port) if c["name"] in names]
        per_name = {n: sum(int(c["ssub"]) for c in rows if c["name"] == n) for n in names}
        if all(v == count for v in per_name.values()):
            break
        assert asyncio.get_running_loop().time() < deadline, per_name
        await asyncio.sleep(0.05)
    for port in cluster.ports:
        for name in names:
            subscribers = [c for c in client_list(port) if c["name"] == name and c["ssub"] != "0"]
            assert len(subscribers) == 1, (port, name, subscribers)


async def delete_while_followed(
    deleter: httpx.AsyncClient, follower: httpx.AsyncClient, session_id: str
) -> None:
    caught_up = asyncio.Event()
    kinds: list[str | None] = []

    async def follow() -> None:
        url = f"/v1/sessions/{session_id}/events"
        async with follower.stream("GET", url) as response:
            assert response.status_code == 200
            async for frame in frames(response):
                kinds.append(frame.event)
                if frame.event == "job.completed":
                    caught_up.set()

    following = asyncio.create_task(follow())
    await asyncio.wait_for(caught_up.wait(), 30)
    response = await deleter.delete(f"/v1/sessions/{session_id}")
    assert response.status_code < 300, response.text
    await asyncio.wait_for(following, 30)
    assert kinds[-1] == "session.deleted"


@pytest.fixture
def cluster_stack(
    cluster: LocalCluster, queue_url: str, log_dir: Path
) -> Iterator[tuple[list[Api], list[Worker]]]:
    """2 workers and 2 APIs on the cluster; stopped by the fixture, so that a test that
    fails (or times out) leaves no process behind."""
    env = service_env(
        queue_url,
        stream_redis_url=cluster.url,
        redis_max_connections=str(MAX_CONNECTIONS),
        **STACK_SETTINGS,
    )
    workers: list[Worker] = []
    apis: list[Api] = []
    try:
        workers += [Worker(env, log_dir, "--concurrency", "10").start() for _ in range(2)]
        apis += [Api(env, log_dir).start() for _ in range(2)]
        yield apis, workers
    finally:
        for proc in [*apis, *workers]:
            proc.stop()


@pytest.mark.timeout(180)
async def test_twenty_sessions_on_a_cluster_resume_across_apis_with_bounded_connections(
    cluster: LocalCluster, cluster_stack: tuple[list[Api], list[Worker]]
) -> None:
    apis, _workers = cluster_stack
    rng = random.Random(10)
    clients = [
        httpx.AsyncClient(base_url=api.url, timeout=httpx.Timeout(10.0, read=60.0)) for api in apis
    ]
    try:
        run = uuid.uuid4().hex[:6]
        accepted = [
            await submit(
                clients[i % 2],
                session_id=f"cl-{run}-{i}",
                input="tell me",
                parameters={
                    "text": " ".join(rng.choice(WORDS) for _ in range(40)),
                    "tokens_per_second": 200,
                },
            )
            for i in range(20)
        ]
        names = {f"spool-api-{api.pid}" for api in apis}
        watchers = [
            asyncio.create_task(hold_open(client, a["session_id"]))
            for client in clients
            for a in accepted
        ]
        await wait_for_subscriptions(cluster, names, len(accepted))
        await asyncio.gather(
            *(
                cut_and_resume(clients[i % 2], clients[1 - i % 2], a, rng.randint(2, 30))
                for i, a in enumerate(accepted)
            )
        )
        for port in cluster.ports:
            held = [c["name"] for c in client_list(port)]
            for name in names:  # the node's pool, plus the hub's one subscriber connection
                assert 1 <= held.count(name) <= MAX_CONNECTIONS + 1, (port, name, held)
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        shards_with_sessions = [k for k in cluster.keys_per_node(f"spool:*cl-{run}-*") if k]
        assert len(shards_with_sessions) >= 2
        # a DELETE on one API ends a follower on the other (SPUBLISH of session.deleted)
        await delete_while_followed(clients[0], clients[1], accepted[0]["session_id"])
    finally:
        for client in clients:
            await client.aclose()


def node_id(port: int) -> str:
    client = redis.Redis(port=port)
    try:
        return str(client.execute_command("CLUSTER", "MYID").decode())
    finally:
        client.close()


def start_move(slot: int, keys_: list[str], src: int, dst: int) -> None:
    """Begin migrating `slot` from port `src` to port `dst` as `valkey-cli --cluster
    reshard` does (IMPORTING/MIGRATING) and move `keys_`: until `finish_move`, `src`
    answers ASK for them."""
    source, target = redis.Redis(port=src), redis.Redis(port=dst)
    target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(src))
    source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(dst))
    source.execute_command("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys_)
    source.close()
    target.close()


def finish_move(cluster: LocalCluster, slot: int, dst: int) -> None:
    """The slot belongs to `dst` now: every node answers MOVED for it."""
    for port in cluster.ports:
        client = redis.Redis(port=port)
        client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", node_id(dst))
        client.close()


async def test_appends_and_subscriptions_follow_a_slot_that_moves(cluster: LocalCluster) -> None:
    streams = open_streams(cluster.url, 4, "spool-test-moves")
    assert isinstance(streams, ClusterRedis)
    k = Keys()
    writer = StreamWriter(streams, k, retention_s=60)
    session = SessionRef(tenant="acme", session_id=f"mv-{uuid.uuid4().hex[:8]}")
    stream, marks, channel = k.stream(session), k.marks(session), k.notify(session).encode()
    got: list[tuple[str, bytes]] = []
    subscriber = ShardSubscriber(streams, lambda kind, ch, data: got.append((kind, ch)))
    runner = asyncio.create_task(subscriber.run())
    try:
        await subscriber.subscribe([channel])
        await wait_until(lambda: ("subscribe", channel) in got)
        assert len(await writer.append(session, "job1", 0, [event("job.queued", 0)])) == 1
        await wait_until(lambda: ("message", channel) in got)

        slot = key_slot(stream.encode())
        src = streams.address_of(stream)[1]
        dst = next(p for p in cluster.ports if p != src)
        start_move(slot, [stream, marks], src, dst)
        # mid-migration: `src` answers ASK for a key it gave away; read on `dst` after ASKING
        assert await streams.xlen(stream) == 1
        assert streams.address_of(stream)[1] == src  # an ASK is for one command only
        # the append script's keys are split (its tombstone key exists nowhere): ASK, then
        # TRYAGAIN on `dst` until the migration ends
        appending = asyncio.create_task(writer.append(session, "job1", 1, [event("x", 1)]))
        await asyncio.sleep(0.2)  # let it meet TRYAGAIN (not synchronisation: either way works)
        got.clear()
        finish_move(cluster, slot, dst)
        assert len(await appending) == 1
        assert await streams.xlen(stream) == 2  # sent to `src`: MOVED, the table is read again
        assert streams.address_of(stream)[1] == dst
        # `src` dropped the subscription (sunsubscribe); it is placed again on `dst`
        await wait_until(lambda: ("subscribe", channel) in got)
        await writer.append(session, "job1", 1, [event("x", 2)])
        await wait_until(lambda: ("message", channel) in got)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await subscriber.aclose()
        await streams.aclose()


def event(kind: str, seq: int) -> Outgoing:
    return Outgoing(type=kind, seq=seq, data=b"{}")


async def wait_until(condition: Callable[[], bool], within_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
