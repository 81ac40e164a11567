"""Per-session FIFO (`on_busy`): jobs of one session run one at a time, in submission order.

The session's unfinished job ids form a list; only its head is in the arq queue (a job
admitted to an empty list is enqueued by the same script). A finished job advances the
list and the new head is enqueued. Any number of workers
may run, and a crash between "finished" and "enqueue the next" is repaired by the
next attempt of the finished job, which advances again (idempotently).
"""

from redis.asyncio import Redis

from spool.shared import keys
from spool.shared.connections import awaited
from spool.shared.queue import ENQUEUE_FUNCTION, enqueue_args, enqueue_keys

ADMIT_LUA = (
    ENQUEUE_FUNCTION
    + """
local pending = KEYS[1]
local job, mode, ttl = ARGV[1], ARGV[2], ARGV[3]
local ahead = redis.call('LRANGE', pending, 0, -1)
if mode == 'reject' and #ahead > 0 then
  return {'busy'}
end
redis.call('RPUSH', pending, job)
redis.call('EXPIRE', pending, ttl)
if #ahead == 0 then
  enqueue(KEYS[2], KEYS[3], KEYS[4], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
end
local result = {#ahead == 0 and 'run' or 'wait'}
for _, id in ipairs(ahead) do result[#result + 1] = id end
return result
"""
)

ADVANCE_LUA = """
local pending = KEYS[1]
if redis.call('LINDEX', pending, 0) == ARGV[1] then
  redis.call('LPOP', pending)
end
return redis.call('LINDEX', pending, 0)
"""


class Admission:
    def __init__(self, verdict: str, ahead: list[str]) -> None:
        self.verdict = verdict  # "run": enqueue now; "wait": behind `ahead`; "busy": refused
        self.ahead = ahead


class SessionQueue:
    def __init__(self, redis: Redis, retention_s: int) -> None:
        self._redis = redis
        self._admit = redis.register_script(ADMIT_LUA)
        self._advance = redis.register_script(ADVANCE_LUA)
        self._retention_s = retention_s

    async def admit(self, session_id: str, job_id: str, mode: str) -> Admission:
        """Append `job_id` (unless `mode` is `reject` and the session is busy); enqueue it for
        the workers at once if it is first in line."""
        raw: list[bytes] = await awaited(
            self._admit(
                keys=[keys.pending_key(session_id), *enqueue_keys(job_id)],
                args=[job_id, mode, self._retention_s, *enqueue_args(job_id)],
            )
        )
        return Admission(raw[0].decode(), [j.decode() for j in raw[1:]])

    async def advance(self, session_id: str, finished_job_id: str) -> str | None:
        """Remove the finished head (if it is still the head); return the new head."""
        head: bytes | None = await awaited(
            self._advance(keys=[keys.pending_key(session_id)], args=[finished_job_id])
        )
        return head.decode() if head is not None else None

    async def busy(self, session_id: str) -> bool:
        return bool(await awaited(self._redis.llen(keys.pending_key(session_id))))
