"""Per-session FIFO (`on_busy`) and the session's lifetime on the main Redis.

Jobs of one session run one at a time, in submission order. The session's unfinished job
ids form a list; only its head is in the arq queue (a job admitted to an empty list is
enqueued by the same script). A finished job advances the list and the new head is
enqueued. Any number of workers may run, and a crash between "finished" and "enqueue
the next" is repaired by the next attempt of the finished job, which advances again
(idempotently).

Lifetime: nothing of a session expires while any of its jobs is queued or running.
Admitting a job removes the TTL of the session's keys (record, job list, job records,
history); the advance that empties the pending list gives them `SPOOL_RETENTION_S`.
"""

from redis.asyncio import Redis

from spool.shared import autopipe
from spool.shared.connections import awaited
from spool.shared.keys import Keys, SessionRef, index_value
from spool.shared.limits import ENDED_FUNCTION
from spool.shared.queue import ENQUEUE_FUNCTION, enqueue_args, enqueue_keys

# admit(k, i, job, mode, e, j): k[i..i+8] are the keys pending, session, jobs, records,
# history, tombstone, then the enqueue keys; e[j..j+4] the enqueue arguments. Returns
# {'run' | 'wait', the ids ahead...} or {'deleted'} / {'busy'} (nothing written). Also
# inside the one-script submission (`shared/submit.py`).
ADMIT_FUNCTION = (
    ENQUEUE_FUNCTION
    + """
local function admit(k, i, job, mode, e, j)
  local pending = k[i]
  if redis.call('EXISTS', k[i + 5]) == 1 then
    return {'deleted'}
  end
  local ahead = redis.call('LRANGE', pending, 0, -1)
  if mode == 'reject' and #ahead > 0 then
    return {'busy'}
  end
  redis.call('RPUSH', pending, job)
  for n = i, i + 4 do
    redis.call('PERSIST', k[n])
  end
  if #ahead == 0 then
    enqueue(k[i + 6], k[i + 7], k[i + 8], e[j], e[j + 1], e[j + 2], e[j + 3], e[j + 4])
  end
  local result = {#ahead == 0 and 'run' or 'wait'}
  for _, id in ipairs(ahead) do result[#result + 1] = id end
  return result
end
"""
)

ADMIT_LUA = ADMIT_FUNCTION + "\nreturn admit(KEYS, 1, ARGV[1], ARGV[2], ARGV, 3)\n"

# advance(pending, session, jobs, records, history, job, ttl): the new head after `job`;
# when none is left, the session is idle and its keys start their retention TTL.
ADVANCE_FUNCTION = """
local function advance(pending, session, jobs, records, history, job, ttl)
  if redis.call('LINDEX', pending, 0) == job then
    redis.call('LPOP', pending)
  end
  local head = redis.call('LINDEX', pending, 0)
  if not head then
    for _, key in ipairs({session, jobs, records, history}) do
      redis.call('EXPIRE', key, ttl)
    end
  end
  return head
end
"""

ADVANCE_LUA = (
    ADVANCE_FUNCTION
    + "\nreturn advance(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2])\n"
)

# A worker's job ended: it stops counting against its tenant's limits, the session's FIFO
# advances, and when the session turns idle its jobs' index entries get the retention TTL
# with its other keys. One call instead of three (the common end of a job).
# KEYS: pending, session, jobs, records, history, active, running, tenants;
# ARGV: job, ttl, tenant, index prefix, index value. Returns the new head.
FINISH_LUA = (
    ENDED_FUNCTION
    + ADVANCE_FUNCTION
    + """
local job, ttl, index = ARGV[1], ARGV[2], ARGV[5]
ended(KEYS[6], KEYS[7], KEYS[8], ARGV[3], {job}, 1)
local head = advance(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], job, ttl)
if not head then
  for _, id in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
    redis.call('SET', ARGV[4] .. id, index, 'EX', ttl)
  end
end
return head
"""
)


class Admission:
    def __init__(self, verdict: str, ahead: list[str]) -> None:
        self.verdict = verdict  # "run": enqueued now; "wait": behind `ahead`; "busy"/"deleted"
        self.ahead = ahead

    @classmethod
    def of(cls, raw: list[bytes]) -> "Admission":
        """From `ADMIT_FUNCTION`'s reply."""
        return cls(raw[0].decode(), [j.decode() for j in raw[1:]])


class SessionQueue:
    def __init__(self, redis: Redis, keys: Keys, retention_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._admit = redis.register_script(ADMIT_LUA)
        self._advance = redis.register_script(ADVANCE_LUA)
        self._finish = redis.register_script(FINISH_LUA)
        self._pipe = autopipe.shared(redis)  # many jobs' ends share a round trip
        self._retention_s = retention_s

    def _lifetime_keys(self, s: SessionRef) -> list[str]:
        k = self._keys
        return [k.pending(s), k.session(s), k.jobs(s), k.records(s), k.history(s)]

    async def admit(self, s: SessionRef, job_id: str, mode: str) -> Admission:
        """Append `job_id` (unless `mode` is `reject` and the session is busy); enqueue it for
        the workers at once if it is first in line."""
        keys, args = self.admit_args(s, job_id)
        raw: list[bytes] = await awaited(self._admit(keys=keys, args=[job_id, mode, *args]))
        return Admission.of(raw)

    def admit_args(self, s: SessionRef, job_id: str) -> tuple[list[str], list[bytes | int | str]]:
        """`ADMIT_FUNCTION`'s keys and its enqueue arguments."""
        keys = [*self._lifetime_keys(s), self._keys.tombstone(s), *enqueue_keys(self._keys, job_id)]
        return keys, enqueue_args(self._keys, s, job_id)

    async def advance(self, s: SessionRef, finished_job_id: str) -> str | None:
        """Remove the finished head (if it is still the head); return the new head."""
        head: bytes | None = await awaited(
            self._advance(keys=self._lifetime_keys(s), args=[finished_job_id, self._retention_s])
        )
        return head.decode() if head is not None else None

    async def finish(self, s: SessionRef, job_id: str, ended_keys: list[str]) -> str | None:
        """`job_id` ended: it stops counting (`ended_keys`: `TenantLimits.ended_keys`), the
        FIFO advances past it, and an idle session's job index entries start their TTL.
        Returns the new head."""
        args: list[str | int] = [job_id, self._retention_s, s.tenant]
        args += [self._keys.job_index(""), index_value(s)]
        keys = [*self._lifetime_keys(s), *ended_keys]
        head: bytes | None = await self._pipe.script(self._finish, keys, args)
        return head.decode() if head is not None else None

    async def pending(self, s: SessionRef) -> list[str]:
        return [j.decode() for j in await awaited(self._redis.lrange(self._keys.pending(s), 0, -1))]

    async def busy(self, s: SessionRef) -> bool:
        return bool(await awaited(self._redis.llen(self._keys.pending(s))))
