"""The tool names the workers serve, published so that the API can refuse an unknown tool
at submit time (422) instead of the job failing later on a worker.

Each worker writes its tool names into one hash (`Keys.tools`), each with the time
until which it vouches for it, every `SPOOL_TOOLS_REFRESH_S` (at start-up, then in the
background). A name counts while any live worker vouches for it; a stopped worker's names
lapse after `ttl_s(refresh)`. With no live entry at all (no worker has started, or all
stopped long ago) the API cannot know: it accepts the job, and the worker that runs it
fails it with `unknown_tool` if it does not serve the tool.
"""

import time
from collections.abc import Iterable

from redis.asyncio import Redis

from spool.shared.connections import awaited
from spool.shared.ids import now_ms
from spool.shared.keys import Keys

MIN_TTL_S = 60.0


def ttl_s(refresh_s: float) -> float:
    """How long a worker vouches for its names: three refreshes, at least a minute."""
    return max(MIN_TTL_S, 3 * refresh_s)


async def publish(redis: Redis, keys: Keys, names: Iterable[str], ttl_s: float) -> None:
    until = now_ms() + int(ttl_s * 1000)
    mapping = {name: until for name in names}
    if not mapping:
        return
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(keys.tools(), mapping=mapping)
        pipe.pexpire(keys.tools(), int(ttl_s * 1000))
        await pipe.execute()


async def served(redis: Redis, keys: Keys) -> set[str] | None:
    """The names some live worker serves, or None when no worker vouches for any."""
    raw: dict[bytes, bytes] = await awaited(redis.hgetall(keys.tools()))
    now = now_ms()
    live = {name.decode() for name, until in raw.items() if int(until) > now}
    return live or None


class ServedNames:
    """`served`, remembered for `fresh_s`: a submission naming only tools in the remembered
    set skips the read; any other name is checked against a new read before it is refused
    (a tool a worker has just started serving is never refused from an old copy)."""

    def __init__(self, redis: Redis, keys: Keys, fresh_s: float = 1.0) -> None:
        self._redis = redis
        self._keys = keys
        self._fresh_s = fresh_s
        self._names: set[str] | None = None
        self._read_at = float("-inf")

    async def unknown(self, names: set[str]) -> tuple[list[str], set[str]] | None:
        """None when every name is served (or no worker has said what it serves); else the
        unknown names and the served ones."""
        now = time.monotonic()
        fresh = self._names is not None and now - self._read_at < self._fresh_s
        if fresh and self._names is not None and names <= self._names:
            return None
        served_now = await served(self._redis, self._keys)
        self._names, self._read_at = served_now, now
        if served_now is None:
            return None  # no worker has published: the worker that runs the job decides
        unknown = sorted(names - served_now)
        return (unknown, served_now) if unknown else None
