"""The queue Redis behind Sentinel: `redis+sentinel://h1:26379,h2:26379/<master>/<db>`.

The client asks the Sentinels for the primary's address whenever it opens a connection,
so after a failover the next connection (a pooled command's retry, the worker's pub/sub
reconnect, the hub's) goes to the promoted replica; a connection that still reaches the
demoted primary gets `READONLY`, which redis-py turns into a reconnect. arq needs nothing
of its own: it runs on the same pool.

`redis+sentinel://[user:password@]host:port[,host:port...]/<master>[/<db>]`: the user and
password are the primary's (the Sentinels themselves are reached without).
"""

from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from spool.shared.errors import SpoolError
from spool.shared.fair_pool import FairBlockingPool

SCHEME = "redis+sentinel"


class BadSentinelUrl(SpoolError, ValueError):
    """A `redis+sentinel://` URL that names no Sentinel or no master."""


class SentinelUrl(msgspec.Struct, frozen=True):
    sentinels: list[tuple[str, int]]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.startswith(f"{SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelUrl:
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    try:
        sentinels = [_host_port(h) for h in hosts.split(",") if h]
    except ValueError as exc:
        raise BadSentinelUrl(f"{url!r}: {exc}") from exc
    path = [p for p in parts.path.split("/") if p]
    if parts.scheme != SCHEME or not sentinels or not path or len(path) > 2:
        raise BadSentinelUrl(
            f"expected {SCHEME}://host:port[,host:port...]/<master>[/<db>], got {url!r}"
        )
    if len(path) == 2 and not path[1].isdigit():
        raise BadSentinelUrl(f"the database in {url!r} is not a number")
    userinfo = parts.netloc.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    return SentinelUrl(
        sentinels=sentinels,
        master=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(user) or None,
        password=unquote(password) or None,
    )


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"a Sentinel is host:port, got {text!r}")
    return host, int(port)


class BlockingSentinelPool(SentinelConnectionPool, FairBlockingPool):
    """Sentinel's primary lookup with the blocking pool's bound: at most `max_connections`,
    callers wait for a free one (as with every other Spool pool) instead of failing."""


class SentinelRedis(Redis):
    """The primary's client; closing it closes the Sentinel clients too."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for client in self.sentinels.sentinels if self.sentinels is not None else []:
            await client.aclose()


def open_sentinel_redis(
    url: str, max_connections: int, pool_wait_s: float | None, **connection_kwargs: Any
) -> Redis:
    """A client of the primary that the Sentinels at `url` name, now and after failovers."""
    parsed = parse_sentinel_url(url)
    socket_options = {k: v for k, v in connection_kwargs.items() if k.startswith("socket_")}
    sentinel = Sentinel(parsed.sentinels, sentinel_kwargs=socket_options)  # type: ignore[no-untyped-call]
    client: SentinelRedis = sentinel.master_for(
        parsed.master,
        redis_class=SentinelRedis,
        connection_pool_class=BlockingSentinelPool,
        max_connections=max_connections,
        timeout=pool_wait_s,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        **connection_kwargs,
    )
    client.sentinels = sentinel
    return client
