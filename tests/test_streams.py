"""The stream append script against a real Redis: order, idempotency, fencing, retention."""

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from spool.shared import keys
from spool.shared.connections import open_redis
from spool.shared.streams import Outgoing, StreamClosed, StreamWriter, decode_notice, job_marks

pytestmark = pytest.mark.inprocess


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = open_redis(redis_url, 4)
    yield client
    await client.aclose()


def out(kind: str, seq: int) -> Outgoing:
    return Outgoing(kind, seq, b'{"seq":%d}' % seq)


async def test_append_records_marks_and_retention(redis: Redis) -> None:
    writer = StreamWriter(redis, retention_s=120)
    ids = await writer.append("s1", "j1", 0, [out("job.queued", 0)])
    ids += await writer.append("s1", "j1", 1, [out("job.started", 1), out("text.delta", 2)])
    ids += await writer.append("s1", "j1", 1, [out("job.completed", 3)])
    rows = await redis.xrange(keys.stream_key("s1"))
    assert [r[0] for r in rows] == ids
    assert [r[1][b"t"] for r in rows] == [
        b"job.queued",
        b"job.started",
        b"text.delta",
        b"job.completed",
    ]
    assert {r[1][b"j"] for r in rows} == {b"j1"}
    marks = await job_marks(redis, "s1", "j1")
    assert (marks.queued_id, marks.terminal_id, marks.last_seq, marks.attempt) == (
        ids[0],
        ids[-1],
        3,
        1,
    )
    assert 0 < await redis.ttl(keys.stream_key("s1")) <= 120
    assert 0 < await redis.ttl(keys.marks_key("s1")) <= 120


async def test_a_resent_batch_is_not_written_twice(redis: Redis) -> None:
    writer = StreamWriter(redis, retention_s=60)
    batch = [out("text.delta", 1), out("text.delta", 2)]
    await writer.append("s2", "j1", 1, batch)
    assert await writer.append("s2", "j1", 1, batch) == []
    overlapping = await writer.append("s2", "j1", 1, [*batch, out("text.delta", 3)])
    assert len(overlapping) == 1
    assert await redis.xlen(keys.stream_key("s2")) == 3


async def test_nothing_is_appended_after_the_terminal_event(redis: Redis) -> None:
    writer = StreamWriter(redis, retention_s=60)
    await writer.append("s3", "j1", 1, [out("job.failed", 1)])
    with pytest.raises(StreamClosed):
        await writer.append("s3", "j1", 1, [out("text.delta", 2)])
    assert await redis.xlen(keys.stream_key("s3")) == 1


async def test_an_older_attempt_is_fenced_off(redis: Redis) -> None:
    writer = StreamWriter(redis, retention_s=60)
    await writer.append("s4", "j1", 1, [out("text.delta", 1)])
    await writer.append("s4", "j1", 2, [out("job.retrying", 2)])
    with pytest.raises(StreamClosed):
        await writer.append("s4", "j1", 1, [out("text.delta", 3)])
    assert await redis.xlen(keys.stream_key("s4")) == 2


async def test_each_append_publishes_its_entries_after_the_previous_last_id(
    redis: Redis,
) -> None:
    writer = StreamWriter(redis, retention_s=60)
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.notify_channel("s5"))
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
    first = await writer.append("s5", "j1", 1, [out("text.delta", 1)])
    ids = await writer.append("s5", "j1", 1, [out("text.delta", 2), out("job.completed", 3)])
    notices = []
    for _ in range(2):
        message = await pubsub.get_message(timeout=5)
        assert message is not None
        notices.append(decode_notice(message["data"]))
    assert notices[0] == ("0-0", "j1", [(first[0].decode(), "text.delta", '{"seq":1}')])
    prev, job, rows = notices[1]
    assert (prev, job) == (first[0].decode(), "j1")
    assert rows == [
        (ids[0].decode(), "text.delta", '{"seq":2}'),
        (ids[1].decode(), "job.completed", '{"seq":3}'),
    ]
    rows_in_redis = await redis.xrange(keys.stream_key("s5"))
    assert [r[1][b"d"] for r in rows_in_redis] == [b'{"seq":1}', b'{"seq":2}', b'{"seq":3}']
    await pubsub.aclose()
