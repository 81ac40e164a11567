"""Background duties of a worker process: job leases (heartbeat), cancel requests, wake-ups.

Leases: arq marks a running job with an in-progress key that lives for the job timeout
plus 10 s, so a SIGKILLed worker's job would wait up to an hour. Every `heartbeat_s` the
worker shortens and renews that key to `lease_s` for each job it runs: a live worker
keeps its jobs, a dead one loses them within `lease_s`, and another worker runs them
again (as `job.retrying`).

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

from spool.shared.ids import now_ms
from spool.shared.keys import Keys

log = logging.getLogger(__name__)


class Running:
    """The jobs this process runs: job id → its cancel event, its arq job id (a parked
    job's continuation runs under an arq id of its own, whose lease is the one to renew)
    and its tenant (whose running set holds the same lease)."""

    def __init__(self) -> None:
        self.cancels: dict[str, asyncio.Event] = {}
        self.arq_ids: dict[str, str] = {}
        self.tenants: dict[str, str | None] = {}

    @contextlib.contextmanager
    def track(  # type: ignore[no-untyped-def]
        self, job_id: str, arq_id: str | None = None, tenant: str | None = None
    ):
        event = self.cancels[job_id] = asyncio.Event()
        self.arq_ids[job_id] = arq_id or job_id
        self.tenants[job_id] = tenant
        try:
            yield event
        finally:
            self.cancels.pop(job_id, None)
            self.arq_ids.pop(job_id, None)
            self.tenants.pop(job_id, None)

    def leases(self) -> dict[str, str | None]:
        """arq id → tenant, of every job this process runs."""
        return {arq_id: self.tenants.get(job) for job, arq_id in self.arq_ids.items()}


async def renew_leases(
    redis: Redis, keys: Keys, leases: dict[str, str | None], lease_s: float
) -> None:
    """Renew arq's in-progress key of each job (by arq id), and its tenant's running-set
    entry when it has one (the claim script made it)."""
    if not leases:
        return
    lease_ms = int(lease_s * 1000)
    expiry = now_ms() + lease_ms
    async with redis.pipeline(transaction=False) as pipe:
        for arq_id, tenant in leases.items():
            pipe.pexpire(in_progress_key_prefix + arq_id, lease_ms)  # never creates
            if tenant is not None:
                pipe.zadd(keys.running(tenant), {arq_id: expiry}, xx=True)
                pipe.pexpire(keys.running(tenant), lease_ms)
        await pipe.execute()


async def heartbeat(
    redis: Redis, keys: Keys, running: Running, member: str, every_s: float, lease_s: float
) -> None:
    """Renew the running jobs' leases, and this worker's entry in the fleet's capacity."""
    while True:
        try:
            await renew_leases(redis, keys, running.leases(), lease_s)
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
