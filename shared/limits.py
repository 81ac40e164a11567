"""Per-tenant job limits on the main Redis (contract §4).

Active jobs (`SPOOL_TENANT_MAX_ACTIVE_JOBS`, queued + running): a zset per tenant, job id →
a deadline after which the entry is stale (a job whose end was never recorded stops
counting after the longest it could wait and run). A submission over the limit is a 429.
The worker removes a job when it ends (`worker.jobs.start_next`), the API when a job it
accepted never reached the queue, or its session was deleted.

Running jobs (`SPOOL_TENANT_MAX_RUNNING`) are capped where workers claim jobs
(`worker.claim`): a tenant at its cap leaves its jobs queued and other tenants' jobs
take the free slots. Each worker process registers its concurrency with a lease
(`Keys.workers`), so the default cap, half the live capacity, follows the fleet. The
default binds only while two or more tenants have jobs (`Keys.tenants`): a tenant alone,
as in open mode, may use every slot, and the cap takes hold as soon as another arrives.
"""

from redis.asyncio import Redis

from spool.shared.connections import awaited
from spool.shared.ids import now_ms
from spool.shared.keys import Keys
from spool.shared.settings import Settings

# admit_active(active, tenants, now, deadline, limit, job, tenant) -> 1 | 0 (over the
# limit: nothing written); also inside the one-script submission (`shared/submit.py`)
ADMIT_FUNCTION = """
local function admit_active(active, tenants, now, deadline, limit, job, tenant)
  redis.call('ZREMRANGEBYSCORE', active, '-inf', now)
  if redis.call('ZCARD', active) >= tonumber(limit) then
    return 0
  end
  redis.call('ZADD', active, deadline, job)
  redis.call('PEXPIREAT', active, deadline)
  redis.call('ZADD', tenants, deadline, tenant)
  return 1
end
"""

ADMIT_LUA = (
    ADMIT_FUNCTION
    + """
return admit_active(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
"""
)

# ended(active, running, tenants, tenant, jobs, from): the jobs in `jobs[from..]` stop
# counting; a tenant with none left leaves the set of busy tenants. Also inside the
# worker's end-of-job script (`shared/sessions.py`).
ENDED_FUNCTION = """
local function ended(active, running, tenants, tenant, jobs, from)
  for i = from, #jobs do
    redis.call('ZREM', active, jobs[i])
    redis.call('ZREM', running, jobs[i])
  end
  if redis.call('ZCARD', active) == 0 then
    redis.call('ZREM', tenants, tenant)
  end
end
"""

ENDED_LUA = ENDED_FUNCTION + "\nended(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV, 2)\n"


class TenantLimits:
    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self._redis = redis
        self._keys = keys
        self._settings = settings
        self._admit = redis.register_script(ADMIT_LUA)
        self._ended = redis.register_script(ENDED_LUA)

    def _stale_after_ms(self) -> int:
        s = self._settings
        return int((s.queue_max_wait_s + s.job_timeout_s + s.lease_s * s.max_tries) * 1000)

    def admit_args(self, tenant: str, job_id: str) -> tuple[list[str], list[int | str]]:
        """`ADMIT_FUNCTION`'s keys and its arguments (now, deadline, limit, job, tenant)."""
        now = now_ms()
        deadline = now + self._stale_after_ms()
        limit = self._settings.tenant_max_active_jobs
        keys = [self._keys.active(tenant), self._keys.tenants]
        return keys, [now, deadline, limit, job_id, tenant]

    async def admit(self, tenant: str, job_id: str) -> bool:
        """Count `job_id` as one of the tenant's active jobs; False if that is one too many."""
        keys, args = self.admit_args(tenant, job_id)
        admitted: int = await awaited(self._admit(keys=keys, args=args))
        return bool(admitted)

    async def ended(self, tenant: str, *job_ids: str) -> None:
        """These jobs no longer count (they ended, or never ran)."""
        if job_ids:
            keys = self.ended_keys(tenant)
            await awaited(self._ended(keys=keys, args=[tenant, *job_ids]))

    def ended_keys(self, tenant: str) -> list[str]:
        """`ENDED_FUNCTION`'s keys: the tenant's active and running sets, the busy tenants."""
        return [self._keys.active(tenant), self._keys.running(tenant), self._keys.tenants]


def worker_member(name: str, concurrency: int) -> str:
    """A worker's entry in `Keys.workers`: its name and how many jobs it runs at once."""
    return f"{name}|{concurrency}"
