"""Conversation memory: a session's finished turns, prepended to its next jobs.

Stored under `keys.history_key(session_id)` as a Redis list with one JSON element per
finished job (its input, the assistant's turns, tool calls and results), so trimming
drops whole exchanges, oldest first, and never splits a tool call from its result.
Bounded by `SPOOL_HISTORY_MAX_JOBS` and `SPOOL_HISTORY_MAX_BYTES`; expires with the session.
"""

import msgspec
from redis.asyncio import Redis

from spool.shared.connections import awaited
from spool.shared.jobs import JobSpec, Message
from spool.shared.keys import history_key
from spool.shared.settings import Settings

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[Message])


async def load(redis: Redis, spec: JobSpec) -> list[Message]:
    """The session's earlier turns, oldest first (none when the job says `history: false`)."""
    if not spec.history:
        return []
    raw: list[bytes] = await awaited(redis.lrange(history_key(spec.session_id), 0, -1))
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


async def record(redis: Redis, session_id: str, turns: list[Message], settings: Settings) -> None:
    """Append one finished job's turns and trim the oldest exchanges beyond the bounds."""
    key = history_key(session_id)
    await awaited(redis.rpush(key, _encoder.encode(turns)))
    raw: list[bytes] = await awaited(redis.lrange(key, 0, -1))
    start = keep_from([len(r) for r in raw], settings.history_max_jobs, settings.history_max_bytes)
    async with redis.pipeline(transaction=True) as pipe:
        if start:
            pipe.ltrim(key, start, -1)
        pipe.expire(key, settings.retention_s)
        await pipe.execute()
