"""The tool names the workers serve, published so that the API can refuse an unknown tool
at submit time (422) instead of the job failing later on a worker.

Each worker writes its tool names into one hash (`Keys.tools`), each with the time
until which it vouches for it, every `SPOOL_TOOLS_REFRESH_S` (at start-up, then in the
background). A name counts while any live worker vouches for it; a stopped worker's names
lapse after `ttl_s(refresh)`. With no live entry at all (no worker has started, or all
stopped long ago) the API cannot know: it accepts the job, and the worker that runs it
fails it with `unknown_tool` if it does not serve the tool.
"""

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
