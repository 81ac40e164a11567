"""Background duties of a worker process: job leases (heartbeat), cancel requests, wake-ups.

Leases: arq marks a running job with an in-progress key that lives for the job timeout
plus 10 s, so a SIGKILLed worker's job would wait up to an hour. Every `heartbeat_s` the
worker shortens and renews that key to `lease_s` for each job it runs: a live worker
keeps its jobs, a dead one loses them within `lease_s`, and another worker runs them
again (as `job.retrying`). The renewal also moves the job's queue score to the lease's
expiry (`worker/claim.py`: polls then skip running jobs without looking at them).

Cancels: the API publishes a job id on `Keys.cancel_channel`; the worker running it
sets that job's cancel event at once (arq's poll-based abort is too slow).

Wake-ups: whoever enqueues a job publishes on `Keys.wake_channel`, and idle workers poll
the queue at once instead of at their next poll tick (arq sleeps `poll_delay` between
polls: 0.5 s by default, 260 ms mean pickup). The poll stays, slower, as a safety net.
Both listen on one pub/sub connection per worker process.
"""

import asyncio
import contextlib
import logging

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from spool.shared.connections import awaited
from spool.shared.ids import now_ms
from spool.shared.keys import Keys

log = logging.getLogger(__name__)


class Running:
    """The jobs this process runs (job id → its cancel event), and the leases it holds (arq
    id → the job's tenant, whose running set holds the same lease): from the claim
    (`worker/claim.py`) until arq's bookkeeping of the job is done. A parked job's
    continuation runs under an arq id of its own, whose lease is the one to renew."""

    def __init__(self) -> None:
        self.cancels: dict[str, asyncio.Event] = {}
        self.leases: dict[str, str | None] = {}

    @contextlib.contextmanager
    def track(self, job_id: str):  # type: ignore[no-untyped-def]
        event = self.cancels[job_id] = asyncio.Event()
        try:
            yield event
        finally:
            self.cancels.pop(job_id, None)

    def hold(self, arq_id: str, tenant: str | None) -> None:
        self.leases[arq_id] = tenant

    def release(self, arq_id: str) -> None:
        self.leases.pop(arq_id, None)


# KEYS: the queue; ARGV: now (ms), lease (ms), arq's in-progress prefix, the running-set
# prefix, then (arq id, tenant or '') pairs. A job whose in-progress key is gone (it ended,
# or was handed back, this instant) keeps its queue score: the renewal never delays a retry.
RENEW_LUA = """
local queue, now, lease = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local busy_prefix, running_prefix = ARGV[3], ARGV[4]
local expiry = now + lease
local tenants = {}
for i = 5, #ARGV, 2 do
  local id, tenant = ARGV[i], ARGV[i + 1]
  if redis.call('PEXPIRE', busy_prefix .. id, lease) == 1 then
    redis.call('ZADD', queue, 'XX', expiry, id)
  end
  if tenant ~= '' then
    redis.call('ZADD', running_prefix .. tenant, 'XX', expiry, id)
    tenants[tenant] = true
  end
end
for tenant in pairs(tenants) do
  redis.call('PEXPIRE', running_prefix .. tenant, lease)
end
return 0
"""


class Leases:
    """Renewing the leases of running jobs: one script call for any number of jobs."""

    def __init__(self, redis: Redis, keys: Keys, lease_s: float) -> None:
        self._script = redis.register_script(RENEW_LUA)
        self._keys = keys
        self._lease_ms = int(lease_s * 1000)

    async def renew(self, leases: dict[str, str | None]) -> None:
        """Renew arq's in-progress key of each job (by arq id) and move its queue score to
        the new expiry (`worker/claim.py`: running jobs are not due), and its tenant's
        running-set entry when it has one (the claim script made it)."""
        if not leases:
            return
        args: list[str | int] = [
            now_ms(),
            self._lease_ms,
            in_progress_key_prefix,
            self._keys.running(""),
        ]
        for arq_id, tenant in leases.items():
            args += [arq_id, tenant or ""]
        await awaited(self._script(keys=[self._keys.queue], args=args))


async def heartbeat(
    redis: Redis,
    keys: Keys,
    leases: Leases,
    running: Running,
    member: str,
    every_s: float,
    lease_s: float,
) -> None:
    """Renew the running jobs' leases, and this worker's entry in the fleet's capacity."""
    while True:
        try:
            await leases.renew(dict(running.leases))
            await redis.zadd(keys.workers, {member: now_ms() + int(lease_s * 1000)})
        except Exception as exc:  # Redis away: leases lapse only if it stays away past lease_s
            log.warning("lease renewal failed: %s", exc)
        await asyncio.sleep(every_s)


async def listen(redis: Redis, keys: Keys, running: Running, wake: asyncio.Event) -> None:
    """Cancel requests and queue wake-ups, reconnecting (and waking once) after a drop."""
    cancel_channel = keys.cancel_channel.encode()
    while True:
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(keys.cancel_channel, keys.wake_channel)
            wake.set()  # anything enqueued while we were not listening
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                if message["channel"] != cancel_channel:
                    wake.set()
                elif event := running.cancels.get(message["data"].decode()):
                    event.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("worker pub/sub connection lost (%s); reconnecting", exc)
            await asyncio.sleep(0.5)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
