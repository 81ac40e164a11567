"""Auto-pipelining against a real Redis: the commands of one loop turn share one pooled
connection and one write, each gets its own reply or error, a lost connection fails its
batch and not the next, and a command cancelled before its batch is written is not sent."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from spool.shared.autopipe import MAX_BATCH, AutoPipeline
from spool.shared.connections import open_redis
from tests.helpers import script_loads
from tests.procs import until

pytestmark = pytest.mark.inprocess

NAME = "autopipe-test"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = open_redis(redis_url, 8, client_name=NAME)
    yield client
    await client.aclose()


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Redis]:
    client = open_redis(redis_url, 2)
    yield client
    await client.aclose()


async def named_connections(admin: Redis) -> int:
    return sum(1 for c in await admin.client_list() if c.get("name") == NAME)


async def test_one_turns_commands_share_one_connection_and_get_their_own_replies(
    redis: Redis, admin: Redis
) -> None:
    pipe = AutoPipeline(redis)
    replies = await asyncio.gather(*(pipe.call("INCR", "counter") for _ in range(MAX_BATCH)))
    assert replies == list(range(1, MAX_BATCH + 1))  # in order, each its own
    assert await named_connections(admin) == 1
    # the same through the client's own commands takes every connection of its pool
    await asyncio.gather(*(redis.incr("counter") for _ in range(MAX_BATCH)))
    assert await named_connections(admin) == 8


async def test_an_error_reply_fails_only_its_own_command(redis: Redis) -> None:
    pipe = AutoPipeline(redis)
    await redis.set("text", "not a number")
    results = await asyncio.gather(
        pipe.call("SET", "a", "1"),
        pipe.call("INCR", "text"),
        pipe.call("EVALSHA", "0" * 40, 0),
        pipe.call("GET", "a"),
        return_exceptions=True,
    )
    assert results[0] == b"OK"
    assert isinstance(results[1], ResponseError)
    assert isinstance(results[2], NoScriptError)  # what a caller reloads its script on
    assert results[3] == b"1"


async def test_a_lost_connection_fails_its_batch_and_the_next_batch_runs(
    redis: Redis, admin: Redis
) -> None:
    pipe = AutoPipeline(redis)
    blocked = asyncio.gather(
        pipe.call("SET", "before", "1"),
        pipe.call("BLPOP", "never", 30),
        pipe.call("SET", "after", "1"),
        return_exceptions=True,
    )
    # the batch's connection waits in BLPOP: kill it from outside
    found: list[str] = []

    async def blocking() -> bool:
        clients = await admin.client_list()
        found[:] = [c["id"] for c in clients if (c.get("name"), c.get("cmd")) == (NAME, "blpop")]
        return bool(found)

    await until(blocking, 10, "the batch to block")
    await admin.client_kill_filter(_id=found[0])
    before, lost, after = await blocked
    assert before == b"OK"  # its reply came before the connection was lost
    assert isinstance(lost, RedisConnectionError)
    assert isinstance(after, RedisConnectionError)  # written, but its reply is lost too
    assert await pipe.call("PING") == b"PONG"  # a new batch takes a fresh connection


async def test_a_command_cancelled_before_its_batch_is_written_is_not_sent(
    redis: Redis,
) -> None:
    pipe = AutoPipeline(redis)
    cancelled = asyncio.ensure_future(pipe.call("SET", "cancelled", "1"))
    kept = asyncio.ensure_future(pipe.call("SET", "kept", "1"))
    await asyncio.sleep(0)  # both are queued in this turn's batch
    cancelled.cancel()
    assert await kept == b"OK"
    assert await redis.get("cancelled") is None
    assert await redis.get("kept") == b"1"


async def test_a_script_that_redis_lost_is_loaded_again_and_run_once(redis: Redis) -> None:
    pipe = AutoPipeline(redis)
    script = pipe.register("return redis.call('INCR', KEYS[1])")
    assert pipe.register("return redis.call('INCR', KEYS[1])") is script  # kept
    assert await pipe.script(script, ["runs"], []) == 1
    await redis.script_flush()  # as after a restart
    assert await pipe.script(script, ["runs"], []) == 2


async def test_callers_of_a_script_redis_does_not_hold_load_it_once(redis: Redis) -> None:
    pipe = AutoPipeline(redis)
    script = pipe.register("return redis.call('INCR', KEYS[1])")
    for _ in range(2):  # a script never run here, then one Redis lost (a restart)
        await redis.script_flush()
        before = await script_loads(redis)
        runs = await asyncio.gather(*(pipe.script(script, ["herd"], []) for _ in range(50)))
        assert await script_loads(redis) - before == 1  # not one per caller
        assert sorted(runs) == list(range(runs[0], runs[0] + 50))  # each ran once
