"""Conversation memory against a real Redis: a finished job's turns are appended in one
call that keeps the newest exchanges within both bounds, and nothing is written for a
session that was deleted meanwhile."""

from collections.abc import AsyncIterator

import msgspec
import pytest
from redis.asyncio import Redis

from spool.shared.autopipe import AutoPipeline
from spool.shared.connections import open_redis
from spool.shared.jobs import Message
from spool.shared.keys import Keys, SessionRef
from spool.shared.settings import Settings
from spool.shared.store import JobStore
from spool.worker import memory

pytestmark = pytest.mark.inprocess

KEYS = Keys("memorytest")
S = SessionRef("acme", "s-1")
TURNS = [Message(role="user", content="hi"), Message(role="assistant", content="hello")]
ENCODED = msgspec.json.encode(TURNS)  # the element the job's end appends
NEW = len(ENCODED)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = open_redis(redis_url, 2)
    await client.hset(KEYS.session(S), "tenant", "acme")
    yield client
    await client.aclose()


async def history_after(
    redis: Redis, earlier: list[bytes], jobs: int, max_bytes: int
) -> list[bytes]:
    """The history once TURNS is recorded after `earlier`, within the bounds."""
    if earlier:
        await redis.rpush(KEYS.history(S), *earlier)
    settings = Settings(history_max_jobs=jobs, history_max_bytes=max_bytes)
    outcome = ("job-1", {"status": "completed"})
    await memory.record(AutoPipeline(redis), KEYS, S, TURNS, settings, outcome)
    kept: list[bytes] = await redis.lrange(KEYS.history(S), 0, -1)
    return kept


@pytest.mark.parametrize(
    ("sizes", "jobs", "max_bytes", "kept"),
    [
        ([10, 10], 5, 10_000, 3),  # within both bounds: all kept
        ([10, 10], 2, 10_000, 2),  # over the job count: the oldest goes
        ([50, 30], 5, NEW + 30, 2),  # over the bytes: the oldest goes, the next fits
        ([50, 30], 5, NEW - 1, 0),  # the new exchange alone is too big: nothing is kept
    ],
)
async def test_the_newest_exchanges_are_kept_within_both_bounds(
    redis: Redis, sizes: list[int], jobs: int, max_bytes: int, kept: int
) -> None:
    earlier = [bytes([65 + i]) * size for i, size in enumerate(sizes)]
    history = await history_after(redis, earlier, jobs, max_bytes)
    assert history == [*earlier, ENCODED][len(sizes) + 1 - kept :]
    if kept:
        assert await memory.read(redis, KEYS, S) == TURNS


async def test_nothing_is_recorded_for_a_deleted_session(redis: Redis) -> None:
    await redis.delete(KEYS.session(S))
    assert await history_after(redis, [], 5, 10_000) == []


async def test_a_completed_jobs_outcome_is_recorded_in_the_same_call(redis: Redis) -> None:
    """The job's end writes its record's outcome with its turns (one round trip); only the
    record's fields named change, and a session whose records are gone gets none."""
    store = JobStore(redis, KEYS, retention_s=60)
    await redis.hset(KEYS.records(S), mapping={"job-1.status": '"running"', "job-1.attempt": "1"})
    outcome = ("job-1", {"status": "completed", "output_text": "hello"})
    await memory.record(AutoPipeline(redis), KEYS, S, TURNS, Settings(), outcome)
    assert await redis.lrange(KEYS.history(S), 0, -1) == [ENCODED]
    fields = await redis.hgetall(KEYS.records(S))
    assert fields == {
        b"job-1.status": b'"completed"',
        b"job-1.attempt": b"1",
        b"job-1.output_text": b'"hello"',
    }
    await redis.delete(KEYS.records(S))
    await memory.record(AutoPipeline(redis), KEYS, S, TURNS, Settings(), outcome)
    assert not await redis.exists(KEYS.records(S))
    assert await store.update(S, "job-1", status="failed") is False
