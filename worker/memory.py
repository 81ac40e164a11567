"""Conversation memory: a session's finished turns, prepended to its next jobs.

Stored under `Keys.history(session)` as a Redis list with one JSON element per
finished job (its input, the assistant's turns, tool calls and results), so trimming
drops whole exchanges, oldest first, and never splits a tool call from its result.
Bounded by `SPOOL_HISTORY_MAX_JOBS` and `SPOOL_HISTORY_MAX_BYTES`; expires with the session
(`shared.sessions`), and is never recreated for a session that was deleted meanwhile.
"""

import msgspec
from redis.asyncio import Redis

from spool.shared.connections import awaited
from spool.shared.jobs import Message
from spool.shared.keys import Keys, SessionRef
from spool.shared.settings import Settings

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[Message])

PUSH_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
return redis.call('RPUSH', KEYS[1], ARGV[1])
"""


async def read(redis: Redis, keys: Keys, session: SessionRef) -> list[Message]:
    """The session's earlier turns, oldest first, whatever its jobs say."""
    raw: list[bytes] = await awaited(redis.lrange(keys.history(session), 0, -1))
    turns: list[Message] = []
    for element in raw:
        try:
            turns += _decoder.decode(element)
        except msgspec.DecodeError:
            continue  # an element from an incompatible version: skip it, keep the rest
    return turns


def keep_from(sizes: list[int], max_items: int, max_bytes: int) -> int:
    """Index of the oldest element to keep so that the newest ones fit both bounds."""
    start = max(0, len(sizes) - max_items)
    total = sum(sizes[start:])
    while start < len(sizes) and total > max_bytes:
        total -= sizes[start]
        start += 1
    return start


async def record(
    redis: Redis, keys: Keys, s: SessionRef, turns: list[Message], settings: Settings
) -> None:
    """Append one finished job's turns (if the session still exists) and trim the oldest
    exchanges beyond the bounds."""
    key = keys.history(s)
    pushed = await awaited(
        redis.eval(PUSH_LUA, 2, key, keys.session(s), _encoder.encode(turns))  # type: ignore[arg-type]
    )
    if not pushed:
        return
    raw: list[bytes] = await awaited(redis.lrange(key, 0, -1))
    start = keep_from([len(r) for r in raw], settings.history_max_jobs, settings.history_max_bytes)
    if start:
        await awaited(redis.ltrim(key, start, -1))
