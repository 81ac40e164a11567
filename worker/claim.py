"""Claiming many queued jobs in one round trip, within each tenant's running cap.

arq's `Worker.start_jobs` claims jobs one at a time, each with a WATCH/MULTI transaction
(four round trips); on a worker busy streaming hundreds of jobs every round trip waits
for the event loop too, and pickup fell to ~70 jobs/s. This script applies arq's rule to
a whole poll's worth of ids at once: a job is claimed if it is due (score ≤ now) and no
in-progress key exists, and claiming sets that key (with the lease, below). Same keys and rule,
atomically (a script runs alone), so arq workers and this one can share a queue.

Fairness (`SPOOL_TENANT_MAX_RUNNING`): each claimed job is also entered in its tenant's
running set with a lease (`Keys.running`; the heartbeat renews it, the job's end removes
it). A job whose tenant already runs its cap is left in the queue, and the slot goes to
the next job of another tenant: one tenant cannot fill every worker slot. The default
cap (0) is half the live capacity, the sum of the concurrency the workers registered,
while two or more tenants have jobs; a tenant alone may use every slot. When capped
jobs fill arq's read window (`max(5 * concurrency, 100)` ids per poll), the script looks
further down the queue (up to `SCAN_MAX` entries), so another tenant's job behind them
still gets the free slot.
The tenant comes from the job index (`Keys.job_index`).

The worker's poll is this script too: it reads arq's window of due ids from the queue
itself (`worker/arq_worker.py`), so a wake-up costs one round trip before a job starts, not two.

Divergence from arq: a claimed job's queue score becomes its lease expiry (now +
`SPOOL_LEASE_S`), and the heartbeat moves it on with the lease (`worker/lifecycle.py`).
arq leaves running jobs due at the head of the queue, so every poll walked all of them
(an `EXISTS` each): at 1,000 running jobs, 1,000 key checks per wake-up, and a wake-up
per submission. Now a poll reads only jobs that are due: queued ones, and those whose
worker stopped renewing (due again when their lease lapses, when their in-progress key
lapses too). The score returned is the one the job was queued with (arq's delay figures
and its retry arithmetic); `SpoolWorker.finish_job` puts a job handed back or retried at
the score arq would have given it.

The claim also does what arq's `run_job` does first, in a transaction of its own, for
each job: it reads the job's payload and counts the try (`arq:retry:<id>`, kept a day as
arq keeps it), and the in-progress key gets the lease (`SPOOL_LEASE_S`), not arq's job
timeout, at once: the worker holds the lease from the claim on (`Running.hold`), so a
job starts with no round trip of its own and a worker that dies right after a claim
loses the job within the lease, not within an hour.
"""

from typing import Any, NamedTuple

from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from redis.asyncio import Redis

from spool.shared.connections import awaited
from spool.shared.keys import Keys

SCAN_MAX = 5000  # queue entries one claim may look at past arq's read window
RETRY_KEY_S = 88400  # how long arq keeps a job's try count

CLAIM_LUA = f"""
local SCAN_MAX, FIELDS = {SCAN_MAX}, 5
local queue, now, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local lease, cap, workers = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local running_prefix, index_prefix, tenants = ARGV[6], ARGV[7], ARGV[8]
if cap <= 0 and redis.call('ZCOUNT', tenants, now, '+inf') < 2 then
  cap = 1e12  -- one busy tenant: no one to share with
elseif cap <= 0 then
  local capacity = 0
  redis.call('ZREMRANGEBYSCORE', workers, '-inf', now)
  for _, w in ipairs(redis.call('ZRANGE', workers, 0, -1)) do
    capacity = capacity + tonumber(string.match(w, '|(%d+)$') or '0')
  end
  cap = math.max(1, math.floor(capacity / 2))
end
local counts = {{}}
local claimed = {{}}
local capped = 0
local function consider(id, score)
  local busy = '{in_progress_key_prefix}' .. id
  if not score or tonumber(score) > now or redis.call('EXISTS', busy) == 1 then
    return
  end
  local owner = redis.call('GET', index_prefix .. id)
  local tenant = owner and string.match(owner, '^([^/]+)/')
  if tenant then
    local running = running_prefix .. tenant
    if counts[tenant] == nil then
      redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
      counts[tenant] = redis.call('ZCARD', running)
    end
    if counts[tenant] >= cap then
      capped = capped + 1
      return
    end
    counts[tenant] = counts[tenant] + 1
    redis.call('ZADD', running, now + lease, id)
    redis.call('PEXPIRE', running, lease)
  end
  redis.call('PSETEX', busy, lease, '1')
  redis.call('ZADD', queue, 'XX', now + lease, id)  -- out of the polls' way while it runs
  local tries = '{retry_key_prefix}' .. id
  local try = redis.call('INCR', tries)  -- arq's start, as its run_job does it
  redis.call('EXPIRE', tries, {RETRY_KEY_S})
  local n = #claimed
  claimed[n + 1] = id
  claimed[n + 2] = score
  claimed[n + 3] = tenant or ''
  claimed[n + 4] = redis.call('GET', '{job_key_prefix}' .. id) or ''
  claimed[n + 5] = try
end
local window, offset = tonumber(ARGV[9]), #ARGV - 9
if window > 0 then  -- read arq's window here: one round trip for the poll and the claim
  local rows = redis.call('ZRANGEBYSCORE', queue, '-inf', now, 'WITHSCORES', 'LIMIT', 0, window)
  for j = 1, #rows, 2 do
    if #claimed >= FIELDS * limit then break end
    consider(rows[j], rows[j + 1])
  end
  offset = #rows / 2
else
  for i = 10, #ARGV do
    if #claimed >= FIELDS * limit then break end
    consider(ARGV[i], redis.call('ZSCORE', queue, ARGV[i]))
  end
end
-- Jobs of capped tenants filled arq's read window: look further down the queue, so that
-- another tenant's job behind them gets the free slot (a bounded scan).
while capped > 0 and #claimed < FIELDS * limit and offset < SCAN_MAX do
  local rows = redis.call('ZRANGEBYSCORE', queue, '-inf', now, 'WITHSCORES', 'LIMIT', offset, 200)
  if #rows == 0 then break end
  for j = 1, #rows, 2 do
    if #claimed >= FIELDS * limit then break end
    consider(rows[j], rows[j + 1])
  end
  offset = offset + #rows / 2
end
return claimed
"""


class Claimed(NamedTuple):
    """A job this worker now owns, with what arq's `run_job` would read for it."""

    job_id: str  # arq's id (a continuation has one of its own)
    score: int  # the queue score it was claimed at (its due time)
    tenant: str | None  # from the job index: whose running set holds its lease
    payload: bytes | None  # arq's job data; None: it expired before it was claimed
    job_try: int  # this try's number, counted by the claim


class Claimer:
    def __init__(self, redis: Redis, keys: Keys, lease_s: float, max_running: int) -> None:
        self._script = redis.register_script(CLAIM_LUA)
        self._keys = keys
        self._lease_ms = int(lease_s * 1000)
        self._max_running = max_running

    async def claim(
        self,
        queue: str,
        job_ids: list[str] | int,
        limit: int,
        now_ms: int,
    ) -> list[Claimed]:
        """Up to `limit` of `job_ids` that this worker now owns, in queue order, skipping
        jobs of tenants at their running cap. `job_ids` may include running
        jobs (arq keeps them queued until they end); a number instead reads that many due
        ids from the head of the queue in the same call (arq's poll window)."""
        window, ids = (job_ids, []) if isinstance(job_ids, int) else (0, job_ids)
        if (not ids and not window) or limit <= 0:
            return []
        k = self._keys
        args: list[str | int] = [now_ms, limit, self._lease_ms, self._max_running]
        args += [k.workers, k.running(""), k.job_index(""), k.tenants, window]
        flat: list[Any] = await awaited(self._script(keys=[queue], args=[*args, *ids]))
        return [
            Claimed(
                job_id=flat[i].decode(),
                score=int(float(flat[i + 1])),
                tenant=flat[i + 2].decode() or None,
                payload=flat[i + 3] or None,
                job_try=int(flat[i + 4]),
            )
            for i in range(0, len(flat), 5)
        ]
