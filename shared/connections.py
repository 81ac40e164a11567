"""Redis clients, each owned by whoever opens it (an API lifespan, a worker start-up)."""

import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.asyncio.connection import parse_url

from spool.shared import serializer
from spool.shared.cluster import ClusterRedis, cluster_slots
from spool.shared.fair_pool import FairBlockingPool
from spool.shared.keys import Keys
from spool.shared.sentinel import is_sentinel_url, open_sentinel_redis
from spool.shared.settings import Settings

T = TypeVar("T")


def one_per_client(make: Callable[[Redis], T]) -> Callable[[Redis], T]:
    """A getter of `make(redis)`, made once per client and kept as long as the client."""
    made: weakref.WeakKeyDictionary[Redis, T] = weakref.WeakKeyDictionary()

    def get(redis: Redis) -> T:
        found = made.get(redis)
        if found is None:
            found = made[redis] = make(redis)
        return found

    return get


def awaited(result: Awaitable[T] | T) -> Awaitable[T]:
    """redis-py types its commands as sync-or-async; on the asyncio client they are awaitable."""
    return cast(Awaitable[T], result)


def _connection_options(client_name: str | None) -> dict[str, Any]:
    return {"client_name": client_name, "socket_connect_timeout": 2, "health_check_interval": 30}


POOL_WAIT_S = 10.0  # how long a caller waits for a free connection before an error


def open_redis(
    url: str,
    max_connections: int,
    client_name: str | None = None,
    pool_wait_s: float | None = POOL_WAIT_S,
) -> Redis:
    """A client whose pool never holds more than `max_connections` (callers wait for one,
    in the order they came, up to `pool_wait_s`; None: as long as it takes); of the
    primary that Sentinel names for a `redis+sentinel://` URL.

    `client_name` names every connection (`CLIENT SETNAME`), so that `CLIENT LIST` shows
    which process holds which connections.
    """
    options = _connection_options(client_name)
    if is_sentinel_url(url):
        return open_sentinel_redis(url, max_connections, pool_wait_s, **options)
    pool = FairBlockingPool.from_url(
        url, max_connections=max_connections, timeout=pool_wait_s, **options
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections


def open_streams(
    url: str,
    max_connections: int,
    client_name: str | None = None,
    pool_wait_s: float | None = POOL_WAIT_S,
) -> Redis:
    """The stream Redis: the plain client, or a `ClusterRedis` when `url` names a node of a
    Redis Cluster (at most `max_connections` per primary)."""
    slots = None if is_sentinel_url(url) else cluster_slots(url)
    if slots is None:
        return open_redis(url, max_connections, client_name, pool_wait_s)
    options = {k: v for k, v in parse_url(url).items() if k not in ("host", "port", "db", "path")}
    options |= _connection_options(client_name)
    return ClusterRedis(slots, options, max_connections, pool_wait_s)


def arq_pool(redis: Redis, keys: Keys) -> ArqRedis:
    """arq's client over an existing pool, with msgspec (never pickle) for job payloads."""
    return ArqRedis(
        connection_pool=redis.connection_pool,
        job_serializer=serializer.serialize,
        job_deserializer=serializer.deserialize,
        default_queue_name=keys.queue,
    )


class RedisClients:
    """The main Redis (jobs, sessions, queue) and the stream Redis (may be the same client).

    `pool_wait_s`: how long a command waits for one of the pool's connections. The API
    answers 503 after `POOL_WAIT_S`; a worker waits as long as it takes (None), because
    there a full pool means a busy or CPU-starved process, not an unreachable Redis (which
    fails the connection itself, within its 2 s connect timeout), and the error would make
    arq run the job again from the start: wasted work, never a gain. Waiting without
    bound needs a free connection to come back: a worker keeps two for itself (its pub/sub
    and its stream writer's), so its pools hold at least `min_connections` (3).
    """

    def __init__(
        self,
        settings: Settings,
        client_name: str | None = None,
        pool_wait_s: float | None = POOL_WAIT_S,
        min_connections: int = 1,
    ) -> None:
        self.keys = Keys(settings.key_prefix)  # every key name, under the deployment's prefix
        limit = max(settings.redis_max_connections, min_connections)
        self.main = open_redis(settings.redis_url, limit, client_name, pool_wait_s)
        self.streams = (
            self.main
            if settings.streams_url == settings.redis_url
            else open_streams(settings.streams_url, limit, client_name, pool_wait_s)
        )

    async def aclose(self) -> None:
        await self.main.aclose()
        if self.streams is not self.main:
            await self.streams.aclose()
