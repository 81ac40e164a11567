"""Redis clients, each owned by whoever opens it (an API lifespan, a worker start-up)."""

from collections.abc import Awaitable
from typing import TypeVar, cast

from arq.connections import ArqRedis
from redis.asyncio import BlockingConnectionPool, Redis

from spool.shared import serializer
from spool.shared.keys import Keys
from spool.shared.settings import Settings

T = TypeVar("T")


def awaited(result: Awaitable[T] | T) -> Awaitable[T]:
    """redis-py types its commands as sync-or-async; on the asyncio client they are awaitable."""
    return cast(Awaitable[T], result)


def open_redis(url: str, max_connections: int, client_name: str | None = None) -> Redis:
    """A client whose pool never holds more than `max_connections` (callers wait for one).

    `client_name` names every connection (`CLIENT SETNAME`), so that `CLIENT LIST` shows
    which process holds which connections.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        client_name=client_name,
        timeout=10,
        socket_connect_timeout=2,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections


def arq_pool(redis: Redis, keys: Keys) -> ArqRedis:
    """arq's client over an existing pool, with msgspec (never pickle) for job payloads."""
    return ArqRedis(
        connection_pool=redis.connection_pool,
        job_serializer=serializer.serialize,
        job_deserializer=serializer.deserialize,
        default_queue_name=keys.queue,
    )


class RedisClients:
    """The main Redis (jobs, sessions, queue) and the stream Redis (may be the same client)."""

    def __init__(self, settings: Settings, client_name: str | None = None) -> None:
        self.keys = Keys(settings.key_prefix)  # every key name, under the deployment's prefix
        limit = settings.redis_max_connections
        self.main = open_redis(settings.redis_url, limit, client_name)
        self.streams = (
            self.main
            if settings.streams_url == settings.redis_url
            else open_redis(settings.streams_url, limit, client_name)
        )

    async def aclose(self) -> None:
        await self.main.aclose()
        if self.streams is not self.main:
            await self.streams.aclose()
