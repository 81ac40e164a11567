"""The Redis pools serve waiting callers in the order they came: a caller that sends
commands back to back (a busy follower, a sync) cannot take the connection again and
again ahead of one that was already waiting (redis-py's `BlockingConnectionPool` lets it:
its woken waiter goes to the back of the queue)."""

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from spool.shared.connections import open_redis

pytestmark = pytest.mark.inprocess

HOGS, ROUNDS, SINGLES, CONNECTIONS = 4, 200, 50, 2


async def test_a_waiting_command_is_not_overtaken_by_callers_that_came_after_it(
    redis_url: str,
) -> None:
    client = open_redis(redis_url, CONNECTIONS, client_name="fair", pool_wait_s=30)
    hog_commands = 0
    seen_by_singles: list[int] = []

    async def hog() -> None:  # one command after the other, never yielding in between
        nonlocal hog_commands
        for _ in range(ROUNDS):
            await client.ping()
            hog_commands += 1

    async def single() -> None:
        await client.ping()
        seen_by_singles.append(hog_commands)

    try:
        hogs = [asyncio.create_task(hog()) for _ in range(HOGS)]
        await asyncio.sleep(0)  # the hogs hold or wait for every connection
        await asyncio.gather(*hogs, *(single() for _ in range(SINGLES)))
    finally:
        await client.aclose()
    # each single waits behind what was queued when it came: at most one command per hog
    # in flight and one waiting, not the hogs' every later command (HOGS * ROUNDS)
    assert len(seen_by_singles) == SINGLES
    assert max(seen_by_singles) <= 2 * HOGS


async def test_a_turn_given_up_by_a_timed_out_caller_goes_to_the_next(redis_url: str) -> None:
    client = open_redis(redis_url, 1, client_name="fair", pool_wait_s=0.05)
    pool = client.connection_pool
    held = await pool.get_connection()
    try:
        with pytest.raises(RedisConnectionError):
            await client.ping()  # timed out waiting: its turn must not be lost
    finally:
        await pool.release(held)
    try:
        assert await client.ping() is True
        assert await client.ping() is True  # the one connection came back after each
    finally:
        await client.aclose()
