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

# KEYS: the history, the session; ARGV: the finished job's turns, the most jobs and bytes
# to keep. Appends (only while the session exists) and drops the oldest exchanges beyond
# either bound, even the new one if it alone is too big. One call: the history is not
# read back over the network at each job's end.
PUSH_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
local max_items, max_bytes = tonumber(ARGV[2]), tonumber(ARGV[3])
local start = math.max(0, n - max_items)
local kept = redis.call('LRANGE', KEYS[1], start, -1)
local total = 0
for _, item in ipairs(kept) do
  total = total + #item
end
for _, item in ipairs(kept) do
  if total <= max_bytes then
    break
  end
  total = total - #item
  start = start + 1
end
if start > 0 then
  redis.call('LTRIM', KEYS[1], start, -1)
end
return 1
"""


async def read(redis: Redis, keys: Keys, session: SessionRef) -> list[Message]:
    """The session's earlier turns, oldest first, whatever its jobs say."""
    return decode_history(await awaited(redis.lrange(keys.history(session), 0, -1)))


def decode_history(raw: list[bytes]) -> list[Message]:
    """The turns of a history list's elements (`LRANGE`), skipping what does not decode."""
    turns: list[Message] = []
    for element in raw:
        try:
            turns += _decoder.decode(element)
        except msgspec.DecodeError:
            continue  # an element from an incompatible version: skip it, keep the rest
    return turns


async def record(
    redis: Redis, keys: Keys, s: SessionRef, turns: list[Message], settings: Settings
) -> None:
    """Append one finished job's turns (if the session still exists) and trim the oldest
    exchanges beyond the bounds."""
    script = redis.register_script(PUSH_LUA)
    keys_ = [keys.history(s), keys.session(s)]
    args: list[bytes | int] = [_encoder.encode(turns), settings.history_max_jobs]
    args.append(settings.history_max_bytes)
    await awaited(script(keys=keys_, args=args))
