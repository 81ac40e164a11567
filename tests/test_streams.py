"""The stream append script against a real Redis: order, idempotency, fencing, lifetimes."""

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from spool.shared.connections import open_redis
from spool.shared.keys import Keys, SessionRef
from spool.shared.streams import (
    TRIM_EVERY,
    Append,
    Outgoing,
    StreamClosed,
    StreamWriter,
    decode_notices,
    delete_stream_data,
    job_marks,
    publish_deleted,
)

pytestmark = pytest.mark.inprocess

KEYS = Keys("spooltest")


def ses(name: str, tenant: str = "acme") -> SessionRef:
    return SessionRef(tenant, name)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = open_redis(redis_url, 4)
    yield client
    await client.aclose()


def out(kind: str, seq: int) -> Outgoing:
    return Outgoing(kind, seq, b'{"seq":%d}' % seq)


def writer_on(redis: Redis, retention_s: int = 60) -> StreamWriter:
    return StreamWriter(redis, KEYS, retention_s=retention_s)


async def queued(writer: StreamWriter, s: SessionRef, job: str = "j1") -> bytes:
    return (await writer.append(s, job, 0, [out("job.queued", 0)]))[0]


async def test_append_records_marks_and_lifetime(redis: Redis) -> None:
    writer, s = writer_on(redis, 120), ses("s1")
    ids = [await queued(writer, s)]
    assert await redis.ttl(KEYS.stream(s)) == -1  # a live job: nothing of it expires
    assert await redis.ttl(KEYS.marks(s)) == -1
    ids += await writer.append(s, "j1", 1, [out("job.started", 1), out("text.delta", 2)])
    assert await redis.ttl(KEYS.stream(s)) == -1
    assert await redis.hget(KEYS.marks(s), "_born") == ids[0]  # the marks' first entry
    ids += await writer.append(s, "j1", 1, [out("job.completed", 3)])
    assert await redis.hget(KEYS.marks(s), "_born") == ids[0]
    rows = await redis.xrange(KEYS.stream(s))
    assert [r[0] for r in rows] == ids
    assert [r[1][b"t"] for r in rows] == [
        b"job.queued",
        b"job.started",
        b"text.delta",
        b"job.completed",
    ]
    assert {r[1][b"j"] for r in rows} == {b"j1"}
    marks = await job_marks(redis, KEYS, s, "j1")
    assert (marks.queued_id, marks.terminal_id, marks.last_seq, marks.attempt) == (
        ids[0],
        ids[-1],
        3,
        1,
    )
    assert 0 < await redis.ttl(KEYS.stream(s)) <= 120  # idle: retention starts
    assert 0 < await redis.ttl(KEYS.marks(s)) <= 120


async def test_a_session_stays_live_while_any_of_its_jobs_is(redis: Redis) -> None:
    writer, s = writer_on(redis), ses("live")
    await queued(writer, s, "a")
    await queued(writer, s, "b")
    await writer.append(s, "a", 1, [out("job.completed", 1)])
    assert await redis.ttl(KEYS.stream(s)) == -1  # b still waits
    await writer.append(s, "b", 0, [out("job.cancelled", 1)])
    assert await redis.ttl(KEYS.stream(s)) > 0


async def test_a_job_the_session_never_queued_cannot_append(redis: Redis) -> None:
    """A worker's late append after its session was deleted must not recreate the stream."""
    writer, s = writer_on(redis), ses("gone")
    with pytest.raises(StreamClosed):
        await writer.append(s, "j1", 1, [out("job.cancelled", 5)])
    assert not await redis.exists(KEYS.stream(s), KEYS.marks(s))


async def test_a_tombstone_refuses_every_append(redis: Redis) -> None:
    writer, s = writer_on(redis), ses("tomb")
    await redis.set(KEYS.tombstone(s), b"1", ex=30)
    with pytest.raises(StreamClosed):
        await queued(writer, s)
    assert not await redis.exists(KEYS.stream(s), KEYS.marks(s))


async def test_a_deletion_refuses_every_later_append_of_its_queued_jobs(redis: Redis) -> None:
    """The script skips the tombstone lookup for a job with a queued mark: the deletion
    removes the marks with the tombstone's start, so no such job survives it."""
    writer, s = writer_on(redis), ses("deleted")
    await queued(writer, s)
    await writer.append(s, "j1", 1, [out("text.delta", 1)])
    await delete_stream_data(redis, KEYS, s, 30)
    assert await redis.ttl(KEYS.tombstone(s)) > 0
    with pytest.raises(StreamClosed, match="deleted"):
        await writer.append(s, "j1", 1, [out("text.delta", 2)])
    with pytest.raises(StreamClosed, match="deleted"):
        await queued(writer, s, "j2")
    outcome = await writer.append_many([Append(s, "j1", 1, [out("job.cancelled", 3)])])
    assert isinstance(outcome[0], StreamClosed)
    assert "deleted" in str(outcome[0])  # the many-append script finds the tombstone too
    assert not await redis.exists(KEYS.stream(s), KEYS.marks(s))


async def test_tenants_have_separate_streams_for_one_session_id(redis: Redis) -> None:
    writer = writer_on(redis)
    await queued(writer, ses("same", "acme"))
    assert await redis.xlen(KEYS.stream(ses("same", "acme"))) == 1
    assert not await redis.exists(KEYS.stream(ses("same", "globex")))
    with pytest.raises(StreamClosed):  # acme's job is not globex's
        await writer.append(ses("same", "globex"), "j1", 1, [out("text.delta", 1)])


async def test_a_resent_batch_is_not_written_twice(redis: Redis) -> None:
    writer, s = writer_on(redis), ses("s2")
    await queued(writer, s)
    batch = [out("text.delta", 1), out("text.delta", 2)]
    await writer.append(s, "j1", 1, batch)
    assert await writer.append(s, "j1", 1, batch) == []
    overlapping = await writer.append(s, "j1", 1, [*batch, out("text.delta", 3)])
    assert len(overlapping) == 1
    assert await redis.xlen(KEYS.stream(s)) == 4


async def test_nothing_is_appended_after_the_terminal_event(redis: Redis) -> None:
    writer, s = writer_on(redis), ses("s3")
    await queued(writer, s)
    await writer.append(s, "j1", 1, [out("job.failed", 1)])
    with pytest.raises(StreamClosed):
        await writer.append(s, "j1", 1, [out("text.delta", 2)])
    assert await redis.xlen(KEYS.stream(s)) == 2


async def test_an_older_attempt_is_fenced_off(redis: Redis) -> None:
    writer, s = writer_on(redis), ses("s4")
    await queued(writer, s)
    await writer.append(s, "j1", 1, [out("text.delta", 1)])
    await writer.append(s, "j1", 2, [out("job.retrying", 2)])
    with pytest.raises(StreamClosed):
        await writer.append(s, "j1", 1, [out("text.delta", 3)])
    assert await redis.xlen(KEYS.stream(s)) == 3


async def test_the_stream_is_capped_near_maxlen(redis: Redis) -> None:
    writer, s = StreamWriter(redis, KEYS, retention_s=60, maxlen=10), ses("capped")
    await queued(writer, s)
    for seq in range(1, 501):
        await writer.append(s, "j1", 1, [out("text.delta", seq)])
    assert await redis.xlen(KEYS.stream(s)) < 250  # approximate trimming: whole nodes


async def test_the_stream_is_capped_near_maxlen_whatever_the_batches_and_seq_gaps(
    redis: Redis,
) -> None:
    """Trimming happens when a job's seq crosses a multiple of TRIM_EVERY, not on every
    entry: batches of any size and seqs that skip still cross them."""
    writer, s = StreamWriter(redis, KEYS, retention_s=60, maxlen=10), ses("capped2")
    await queued(writer, s)
    await queued(writer, s, "j2")
    seq = 0
    for size in range(1, 40):
        for job, step in (("j1", 7), ("j2", TRIM_EVERY + 1)):
            batch = [out("text.delta", seq + step * (i + 1)) for i in range(size)]
            await writer.append_many([Append(s, job, 1, batch)])
        seq += (TRIM_EVERY + 1) * size
    assert await redis.xlen(KEYS.stream(s)) < 250 + 2 * TRIM_EVERY


async def notices_of(pubsub: PubSub, messages: int) -> list[list[list[str]]]:
    """The next `messages` messages on the notices channel, decoded."""
    found = []
    for _ in range(messages):
        message = await pubsub.get_message(timeout=5)
        assert message is not None
        assert message["type"] == "message"
        found.append(decode_notices(message["data"]))
    return found


async def test_each_append_announces_its_entries_after_the_previous_last_id(
    redis: Redis,
) -> None:
    writer, s = writer_on(redis), ses("s5")
    tag = KEYS.tag(s)
    pubsub = redis.pubsub()
    await pubsub.subscribe(KEYS.notices)
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
    q = (await queued(writer, s)).decode()
    first = (await writer.append(s, "j1", 1, [out("text.delta", 1)]))[0].decode()
    ids = await writer.append(s, "j1", 1, [out("text.delta", 2), out("job.completed", 3)])
    assert await notices_of(pubsub, 3) == [
        [[tag, "0-0", "j1", q, "job.queued", '{"seq":0}']],
        [[tag, q, "j1", first, "text.delta", '{"seq":1}']],
        [
            [
                *(tag, first, "j1"),
                *(ids[0].decode(), "text.delta", '{"seq":2}'),
                *(ids[1].decode(), "job.completed", '{"seq":3}'),
            ]
        ],
    ]
    rows_in_redis = await redis.xrange(KEYS.stream(s))
    assert [r[1][b"d"] for r in rows_in_redis] == [
        b'{"seq":0}',
        b'{"seq":1}',
        b'{"seq":2}',
        b'{"seq":3}',
    ]
    await writer.append(s, "j1", 1, [out("text.delta", 2)])  # a resent batch: no notice
    await publish_deleted(redis, KEYS, s)
    assert await notices_of(pubsub, 1) == [[[tag, "deleted"]]]
    await pubsub.aclose()


async def test_a_round_of_appends_is_one_message_of_their_notices(redis: Redis) -> None:
    """One script call, one `PUBLISH`: a worker's round for many sessions is one message
    for each fan-out; a refused append announces nothing."""
    writer = writer_on(redis)
    a, b, c = ses("r1"), ses("r2"), ses("r3")
    qa, qb = (await queued(writer, a)).decode(), (await queued(writer, b)).decode()
    pubsub = redis.pubsub()
    await pubsub.subscribe(KEYS.notices)
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
    outcomes = await writer.append_many(
        [
            Append(a, "j1", 1, [out("text.delta", 1)]),
            Append(c, "j1", 1, [out("text.delta", 1)]),  # never queued: refused
            Append(b, "j1", 1, [out("text.delta", 1), out("text.delta", 2)]),
        ]
    )
    assert outcomes[0] == 1
    assert isinstance(outcomes[1], StreamClosed)
    assert outcomes[2] == 2
    [message] = await notices_of(pubsub, 1)
    ida = [i.decode() for i, _ in await redis.xrange(KEYS.stream(a), "(" + qa, "+")]
    idb = [i.decode() for i, _ in await redis.xrange(KEYS.stream(b), "(" + qb, "+")]
    assert message == [
        [KEYS.tag(a), qa, "j1", ida[0], "text.delta", '{"seq":1}'],
        [
            *(KEYS.tag(b), qb, "j1"),
            *(idb[0], "text.delta", '{"seq":1}', idb[1], "text.delta", '{"seq":2}'),
        ],
    ]
    await pubsub.aclose()


async def test_many_appends_in_one_call_each_get_their_own_outcome(redis: Redis) -> None:
    writer = StreamWriter(redis, KEYS, retention_s=60)
    m1, m2 = ses("m1"), ses("m2")
    await writer.append(m1, "j1", 0, [out("job.queued", 0)])
    await writer.append(m1, "j3", 0, [out("job.queued", 0)])
    await writer.append(m2, "j2", 0, [out("job.queued", 0)])
    await writer.append(m2, "j2", 1, [out("job.completed", 1)])
    appends = [
        Append(m1, "j1", 1, [out("text.delta", 1), out("text.delta", 2)]),
        Append(m2, "j2", 1, [out("text.delta", 2)]),  # already ended: refused alone
        Append(m1, "j3", 1, [out("text.delta", 1)]),  # another job of the same session
    ]
    first, refused, third = await writer.append_many(appends)
    assert (first, third) == (2, 1)
    assert isinstance(refused, StreamClosed)
    rows = await redis.xrange(KEYS.stream(m1))
    assert [(r[1][b"j"], r[1][b"d"]) for r in rows[2:]] == [
        (b"j1", b'{"seq":1}'),
        (b"j1", b'{"seq":2}'),
        (b"j3", b'{"seq":1}'),
    ]
    assert await writer.append_many(appends[:1]) == [0], "a resent round writes nothing"
    assert (await job_marks(redis, KEYS, m1, "j1")).last_seq == 2
    assert await redis.xlen(KEYS.stream(m2)) == 2


async def test_many_appends_reload_the_script_after_a_flush(redis: Redis) -> None:
    writer = StreamWriter(redis, KEYS, retention_s=60)
    m3 = ses("m3")
    await writer.append(m3, "j1", 0, [out("job.queued", 0)])
    await redis.script_flush()
    assert await writer.append_many([Append(m3, "j1", 1, [out("text.delta", 1)])]) == [1]
    assert await redis.xlen(KEYS.stream(m3)) == 2
