"""Conversation memory: a session's finished turns, prepended to its next jobs.

Stored under `Keys.history(session)` as a Redis list with one JSON element per
finished job (its input, the assistant's turns, tool calls and results), so trimming
drops whole exchanges, oldest first, and never splits a tool call from its result.
Bounded by `SPOOL_HISTORY_MAX_JOBS` and `SPOOL_HISTORY_MAX_BYTES`; expires with the session
(`shared.sessions`), and is never recreated for a session that was deleted meanwhile.
"""

from typing import Any

import msgspec
from redis.asyncio import Redis

from spool.shared.autopipe import AutoPipeline
from spool.shared.connections import awaited
from spool.shared.jobs import Message
from spool.shared.keys import Keys, SessionRef
from spool.shared.settings import Settings
from spool.shared.store import UPDATE_FUNCTION, update_args

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[Message])

# push_history(history key, session key, the finished job's turns, the most jobs and bytes
# to keep): appends (only while the session exists) and drops the oldest exchanges beyond
# either bound, even the new one if it alone is too big. In Redis: the history is not read
# back over the network at each job's end.
PUSH_FUNCTION = """
local function push_history(history, session, item, max_items, max_bytes)
  if redis.call('EXISTS', session) == 0 then
    return 0
  end
  local n = redis.call('RPUSH', history, item)
  local start = math.max(0, n - max_items)
  local kept = redis.call('LRANGE', history, start, -1)
  local total = 0
  for _, element in ipairs(kept) do
    total = total + #element
  end
  for _, element in ipairs(kept) do
    if total <= max_bytes then
      break
    end
    total = total - #element
    start = start + 1
  end
  if start > 0 then
    redis.call('LTRIM', history, start, -1)
  end
  return 1
end
"""

# KEYS: the history, the session, the records; ARGV: the turns, the bounds, then the
# record's field/value pairs: a completed job's history and outcome in one call
RECORD_LUA = (
    PUSH_FUNCTION
    + UPDATE_FUNCTION
    + """
push_history(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
return update_record(KEYS[3], {unpack(ARGV, 4)})
"""
)


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
    pipe: AutoPipeline,
    keys: Keys,
    s: SessionRef,
    turns: list[Message],
    settings: Settings,
    outcome: tuple[str, dict[str, Any]],
) -> None:
    """Append a completed job's turns (if the session still exists) and trim the oldest
    exchanges beyond the bounds, and set `outcome`'s fields (job id, fields) of the job's
    record in the same call (as `JobStore.update` would)."""
    keys_ = [keys.history(s), keys.session(s), keys.records(s)]
    args: list[Any] = [_encoder.encode(turns), settings.history_max_jobs]
    args += (settings.history_max_bytes, *update_args(*outcome))
    await pipe.script(pipe.register(RECORD_LUA), keys_, args)
