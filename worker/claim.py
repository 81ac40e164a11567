"""Claiming many queued jobs in one round trip, within each tenant's running cap.

arq's `Worker.start_jobs` claims jobs one at a time, each with a WATCH/MULTI transaction
(four round trips); on a worker busy streaming hundreds of jobs every round trip waits
for the event loop too, and pickup fell to ~70 jobs/s. This script applies arq's rule to
a whole poll's worth of ids at once: a job is claimed if it is due (score ≤ now) and no
in-progress key exists, and claiming sets that key with arq's TTL. Same keys, same rule,
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
itself (`worker/main.py`), so a wake-up costs one round trip before a job starts, not two.

Divergence from arq: a claimed job's queue score becomes its lease expiry (now +
`SPOOL_LEASE_S`), and the heartbeat moves it on with the lease (`worker/lifecycle.py`).
arq leaves running jobs due at the head of the queue, so every poll walked all of them
(an `EXISTS` each): at 1,000 running jobs, 1,000 key checks per wake-up, and a wake-up
per submission. Now a poll reads only jobs that are due: queued ones, and those whose
worker stopped renewing (due again when their lease lapses, when their in-progress key
lapses too). The score returned is the one the job was queued with (arq's delay figures
and its retry arithmetic); `SpoolWorker.finish_job` puts a job handed back or retried at
the score arq would have given it.
"""

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from spool.shared.connections import awaited
from spool.shared.keys import Keys

SCAN_MAX = 5000  # queue entries one claim may look at past arq's read window

CLAIM_LUA = f"""
local SCAN_MAX = {SCAN_MAX}
local queue, now, ttl, limit = KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local lease, cap, workers = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local running_prefix, index_prefix, tenants = ARGV[7], ARGV[8], ARGV[9]
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
  redis.call('PSETEX', busy, ttl, '1')
  redis.call('ZADD', queue, 'XX', now + lease, id)  -- out of the polls' way while it runs
  claimed[#claimed + 1] = id
  claimed[#claimed + 1] = score
end
local window, offset = tonumber(ARGV[10]), #ARGV - 10
if window > 0 then  -- read arq's window here: one round trip for the poll and the claim
  local rows = redis.call('ZRANGEBYSCORE', queue, '-inf', now, 'WITHSCORES', 'LIMIT', 0, window)
  for j = 1, #rows, 2 do
    if #claimed >= 2 * limit then break end
    consider(rows[j], rows[j + 1])
  end
  offset = #rows / 2
else
  for i = 11, #ARGV do
    if #claimed >= 2 * limit then break end
    consider(ARGV[i], redis.call('ZSCORE', queue, ARGV[i]))
  end
end
-- Jobs of capped tenants filled arq's read window: look further down the queue, so that
-- another tenant's job behind them gets the free slot (a bounded scan).
while capped > 0 and #claimed < 2 * limit and offset < SCAN_MAX do
  local rows = redis.call('ZRANGEBYSCORE', queue, '-inf', now, 'WITHSCORES', 'LIMIT', offset, 200)
  if #rows == 0 then break end
  for j = 1, #rows, 2 do
    if #claimed >= 2 * limit then break end
    consider(rows[j], rows[j + 1])
  end
  offset = offset + #rows / 2
end
return claimed
"""


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
        in_progress_ms: int,
    ) -> list[tuple[str, int]]:
        """Up to `limit` of `job_ids` that this worker now owns (with their scores), in queue
        order, skipping jobs of tenants at their running cap. `job_ids` may include running
        jobs (arq keeps them queued until they end); a number instead reads that many due
        ids from the head of the queue in the same call (arq's poll window)."""
        window, ids = (job_ids, []) if isinstance(job_ids, int) else (0, job_ids)
        if (not ids and not window) or limit <= 0:
            return []
        k = self._keys
        args: list[str | int] = [now_ms, in_progress_ms, limit, self._lease_ms]
        args += [self._max_running, k.workers, k.running(""), k.job_index(""), k.tenants, window]
        flat: list[bytes] = await awaited(self._script(keys=[queue], args=[*args, *ids]))
        return [(flat[i].decode(), int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]
