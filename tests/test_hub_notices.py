"""The hub's notice path in process: real appends on a real Redis, their real notices
(captured off the notices channel) handed to the hub in a chosen order, so that the
cases a live subscriber meets only by chance (a notice for entries a sync already read)
are played deterministically. Pins that every entry is buffered once and in order, and
that `Hub._apply`'s textual comparison of a notice's "before" id never takes a stale
notice for the next one."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from spool.api.auth import OPEN_TENANT
from spool.api.hub import Entry, Follower, Hub, Start, Topic, entry
from spool.shared.connections import open_redis
from spool.shared.ids import ZERO, StreamId, redis_stream_id
from spool.shared.keys import Keys, SessionRef
from spool.shared.streams import Outgoing, StreamWriter
from tests.helpers import script_loads

pytestmark = pytest.mark.inprocess

KEYS = Keys()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = open_redis(redis_url, 4)
    yield client
    await client.aclose()


async def appended_with_notices(
    redis: Redis, writer: StreamWriter, s: SessionRef, seqs: range
) -> tuple[list[bytes], list[bytes]]:
    """Append one `text.delta` per seq; their ids and the notices messages they published."""
    pubsub = redis.pubsub()
    await pubsub.subscribe(KEYS.notices)
    ids, messages = [], []
    try:
        confirmed = await pubsub.get_message(timeout=10)  # subscribed before appending
        assert confirmed is not None
        assert confirmed["type"] == "subscribe"
        for seq in seqs:
            data = msgspec.json.encode({"type": "text.delta", "delta": f"é{seq}", "seq": seq})
            ids += await writer.append(s, "j", 1, [Outgoing("text.delta", seq, data)])
        while len(messages) < len(seqs):
            message = await pubsub.get_message(timeout=10)
            assert message is not None, "a notice did not arrive"
            messages.append(message["data"])
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    return ids, messages


async def queued_session(
    redis: Redis, session_id: str
) -> tuple[SessionRef, StreamWriter, list[bytes]]:
    """A session whose stream holds one `job.queued`; its writer and that entry's id."""
    s = SessionRef(OPEN_TENANT, session_id)
    writer = StreamWriter(redis, KEYS, retention_s=60)
    return s, writer, await writer.append(s, "j", 0, [Outgoing("job.queued", 0, b"{}")])


def hand(hub: Hub, messages: list[bytes]) -> None:
    """Notices messages to the hub, as its subscriber would."""
    for message in messages:
        hub._on_message("message", KEYS.notices.encode(), message)


@contextlib.asynccontextmanager
async def following(hub: Hub, s: SessionRef, start: Start | None = None) -> AsyncIterator[Follower]:
    """A follower of `s` on `hub`; the hub is closed after it."""
    try:
        async with hub.follow(s, start) as follower:
            yield follower
    finally:
        await hub.aclose()


async def sync_ends(topic: Topic) -> None:
    """Until the topic's running sync is done."""
    assert topic.syncing is not None
    await topic.syncing


async def synced(hub: Hub, topic: Topic) -> None:
    hub._mark(topic)
    await sync_ends(topic)


async def test_a_notice_a_sync_already_read_is_not_buffered_again(
    redis: Redis, session_id: str
) -> None:
    s, writer, queued = await queued_session(redis, session_id)
    hub = Hub(redis, KEYS)  # not started: the test hands it the notices itself
    async with following(hub, s) as follower:
        topic = follower.topic
        assert topic.syncing is not None
        await topic.syncing  # the buffer starts at the stream's tail (job.queued)
        ids, messages = await appended_with_notices(redis, writer, s, range(1, 4))

        hub._on_message("message", KEYS.notices.encode(), messages[0])  # follows: applied
        assert [e.raw_id for e in topic.buffer] == ids[:1]
        await synced(hub, topic)  # reads the other two from Redis
        assert [e.raw_id for e in topic.buffer] == ids
        for message in messages[1:]:  # already read: neither is buffered again
            hub._on_message("message", KEYS.notices.encode(), message)
            if topic.syncing is not None:
                await topic.syncing
        assert [e.raw_id for e in topic.buffer] == ids

        more, messages = await appended_with_notices(redis, writer, s, range(4, 6))
        for message in messages:  # the next ones follow the buffer again: applied
            hub._on_message("message", KEYS.notices.encode(), message)
        assert [e.raw_id for e in topic.buffer] == ids + more
        assert topic.last == topic.buffer[-1].sid
        read = await hub.read(topic, (0, 0))  # what Redis holds
        assert [e.frame for e in topic.buffer] == [e.frame for e in read[1:]]
        assert read[0].raw_id == queued[0]


class _Counting(Hub):
    """A hub whose first sync is overtaken by appends: their notices come while the sync's
    own round trip is still out (`during`), as a busy process sees them."""

    def __init__(self, redis: Redis, during: Callable[[], Awaitable[None]]) -> None:
        super().__init__(redis, KEYS)
        self.during = during
        self.reads = 0

    async def _born_and_tail(self, topic: Topic) -> tuple[bytes | None, list[Any]]:
        found = await super()._born_and_tail(topic)
        await self.during()
        return found

    async def read(self, topic: Topic, cursor: StreamId) -> list[Entry]:
        self.reads += 1
        return await super().read(topic, cursor)


async def test_notices_that_come_during_a_sync_are_applied_after_it_without_reading_again(
    redis: Redis, session_id: str
) -> None:
    s, writer, queued = await queued_session(redis, session_id)
    ids: list[bytes] = []

    async def during() -> None:  # after the tail was read, before the sync goes on
        appended, messages = await appended_with_notices(redis, writer, s, range(1, 4))
        ids.extend(appended)
        hand(hub, messages)
        assert len(follower.topic.held) == 3  # the sync still runs: held, not read again

    hub = _Counting(redis, during)
    async with following(hub, s) as follower:
        topic = follower.topic
        await sync_ends(topic)
        assert topic.base is not None
        assert topic.base == redis_stream_id(queued[0])
        assert [e.raw_id for e in topic.buffer] == ids  # from the held notices, in order
        assert (topic.held, topic.dirty, hub.reads) == ([], False, 0)
        assert topic.last == topic.buffer[-1].sid
        read = await hub.read(topic, topic.base)  # what Redis holds after the tail
        assert [e.frame for e in topic.buffer] == [e.frame for e in read]


async def test_held_notices_a_sync_read_past_are_not_buffered_again(
    redis: Redis, session_id: str
) -> None:
    s, writer, _ = await queued_session(redis, session_id)
    hub = Hub(redis, KEYS)
    async with following(hub, s) as follower:
        topic = follower.topic
        await synced(hub, topic)
        ids, messages = await appended_with_notices(redis, writer, s, range(1, 4))
        hub._mark(topic)  # a sync is due (a reconnect, say): notices meanwhile are held
        hand(hub, messages[1:])  # the first is missed: a gap before the others
        assert len(topic.held) == 2
        assert topic.syncing is not None
        await topic.syncing  # reads all three; the held two are already there
        assert [e.raw_id for e in topic.buffer] == ids
        assert (topic.held, topic.dirty) == ([], False)


async def test_a_held_notice_after_a_gap_makes_the_sync_read_the_gap(
    redis: Redis, session_id: str
) -> None:
    s, writer, _ = await queued_session(redis, session_id)
    ids: list[bytes] = []

    async def during() -> None:
        appended, messages = await appended_with_notices(redis, writer, s, range(1, 4))
        ids.extend(appended)
        hand(hub, messages[1:])  # the first notice is lost

    hub = _Counting(redis, during)
    async with following(hub, s) as follower:
        topic = follower.topic
        await sync_ends(topic)
        assert [e.raw_id for e in topic.buffer] == ids  # read, not taken from notices
        assert hub.reads >= 1
        assert (topic.held, topic.dirty) == ([], False)


async def test_a_topic_started_where_a_submission_left_the_stream_reads_only_a_gap(
    redis: Redis, session_id: str
) -> None:
    s, writer, queued = await queued_session(redis, session_id)
    start = await submission_start(redis, s, queued)
    missed, _ = await appended_with_notices(redis, writer, s, range(1, 3))  # before the topic
    hub = _Counting(redis, _nothing)
    async with following(hub, s, start) as follower:
        topic = follower.topic
        assert topic.syncing is None  # no read to begin
        assert [e.raw_id for e in topic.after((0, 0), 10)] == queued
        assert follower.caught_up(start.newest.sid)
        more, messages = await appended_with_notices(redis, writer, s, range(3, 5))
        hand(hub, messages)  # 3's "before" is 2, not job.queued: a gap, read
        await sync_ends(topic)
        assert [e.raw_id for e in topic.buffer] == queued + missed + more
        assert hub.reads >= 1


async def test_a_topic_started_where_a_submission_left_the_stream_needs_no_read(
    redis: Redis, session_id: str
) -> None:
    s, writer, queued = await queued_session(redis, session_id)
    hub = _Counting(redis, _nothing)
    async with following(hub, s, await submission_start(redis, s, queued)) as f:
        ids, messages = await appended_with_notices(redis, writer, s, range(1, 4))
        hand(hub, messages)
        assert [e.raw_id for e in f.topic.buffer] == queued + ids
        assert (f.topic.syncing, hub.reads) == (None, 0)
        read = await hub.read(f.topic, (0, 0))
        assert [e.frame for e in f.topic.buffer] == [e.frame for e in read]


async def _nothing() -> None:
    return None


async def submission_start(redis: Redis, s: SessionRef, queued: list[bytes]) -> Start:
    """The stream as `queued_session`'s append left it, as the submit script reports it."""
    born = await redis.hget(KEYS.marks(s), "_born")  # type: ignore[misc]
    return Start(born, entry(queued[0], b"job.queued", b"j", b"{}"))


async def test_readers_that_need_the_read_script_load_it_once(
    redis: Redis, session_id: str
) -> None:
    s, _, queued = await queued_session(redis, session_id)
    hub = Hub(redis, KEYS)
    async with following(hub, s) as follower:
        await redis.script_flush()  # as after a restart: the read script is not in Redis
        before = await script_loads(redis)
        reads = await asyncio.gather(*(hub.read(follower.topic, (0, 0)) for _ in range(50)))
        assert await script_loads(redis) - before == 1  # not one per reader
        await redis.script_flush()  # gone again while the hub holds it as loaded
        reads += await asyncio.gather(*(hub.read(follower.topic, (0, 0)) for _ in range(50)))
    assert all([e.raw_id for e in read] == queued for read in reads)


async def test_readers_that_join_at_once_share_one_connection(
    redis_url: str, redis: Redis, session_id: str
) -> None:
    """A burst of clients joining a session (or resuming after a deploy) reads its history
    in one round trip: not one pooled command, and one connection, per reader."""
    s, _, queued = await queued_session(redis, session_id)
    name = f"readers-{session_id}"[:60]
    reader = open_redis(redis_url, 8, client_name=name)
    hub = Hub(reader, KEYS)
    try:
        async with following(hub, s) as follower:
            if follower.topic.syncing is not None:
                await sync_ends(follower.topic)  # its own commands: the pool's first connection
            reads = await asyncio.gather(*(hub.read(follower.topic, (0, 0)) for _ in range(50)))
            clients = await redis.client_list()
    finally:
        await hub.aclose()
        await reader.aclose()
    assert all([e.raw_id for e in read] == queued for read in reads)
    assert len([c for c in clients if c["name"] == name]) == 1  # was up to the pool's 8


async def evalsha_calls(redis: Redis) -> int:
    stats: dict[str, dict[str, int]] = await redis.info("commandstats")  # type: ignore[assignment]
    return stats.get("cmdstat_evalsha", {}).get("calls", 0)


async def test_followers_that_join_from_one_id_read_redis_once_and_then_memory(
    redis: Redis, session_id: str
) -> None:
    """A crowd joining a session from its start (or resuming after a deploy from one id)
    needs what the hub's buffer does not hold: one read for all of them, kept in front of
    the buffer, so that the followers who come next read memory."""
    s, writer, queued = await queued_session(redis, session_id)
    ids = list(queued)
    for seq in range(1, 6):
        ids += await writer.append(s, "j", 1, [Outgoing("text.delta", seq, b'{"d":1}')])
    hub = Hub(redis, KEYS)
    async with following(hub, s) as first, contextlib.AsyncExitStack() as more:
        if first.topic.syncing is not None:
            await sync_ends(first.topic)  # the buffer starts at the stream's end
        assert not first.topic.covers(ZERO)
        crowd = [first] + [await more.enter_async_context(hub.follow(s)) for _ in range(29)]
        before = await evalsha_calls(redis)
        batches = await asyncio.gather(*(f.next_batch(ZERO, 5) for f in crowd))
        read_once = await evalsha_calls(redis) - before
        async with hub.follow(s) as late:
            batches.append(await late.next_batch(ZERO, 5))
        assert await evalsha_calls(redis) - before == read_once
    assert read_once == 1
    assert all([e.raw_id for e in batch] == ids for batch in batches)
