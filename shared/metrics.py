"""What the API's and the workers' `/metrics` have in common (contract §11).

Each process has ONE `CollectorRegistry` (the API's in `api/metrics.py`, a worker's in
`worker/metrics.py`), not prometheus-client's global one, so that the two sets never
collide when both are imported into one interpreter (the tests do). Counters move on
the hot path at most once per batch; whatever needs Redis (the queue) is read when
Prometheus scrapes, so an unscraped process pays nothing for it.

Queue depth counts the jobs in the workers' queue: `spool_queue_depth` those no worker has
claimed yet (what the HPA scales on, deploy/k8s/), `spool_queue_running` those claimed
(arq keeps a job in its queue until it ends). Jobs waiting behind another job of the
same session are in the session's FIFO, not in the queue: a new worker could not run
them anyway.
"""

import logging

from arq.constants import in_progress_key_prefix
from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from redis.asyncio import Redis

from spool.shared.connections import awaited
from spool.shared.keys import Keys

log = logging.getLogger(__name__)

SCAN_LIMIT = 10_000  # queue entries looked at for the running count (running jobs come last)

# (queue length, claimed among the latest SCAN_LIMIT, parked jobs); arq's in-progress key
# marks a claim, and a claimed job's score is its lease expiry (`worker/claim.py`): the
# end of the queue; a job waiting for approvals has one entry in the approvals' due set
QUEUE_LUA = f"""
local ids = redis.call('ZRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
local running = 0
for _, id in ipairs(ids) do
  running = running + redis.call('EXISTS', '{in_progress_key_prefix}' .. id)
end
return {{redis.call('ZCARD', KEYS[1]), running, redis.call('ZCARD', KEYS[2])}}
"""


def new_registry() -> CollectorRegistry:
    """A process's registry, with the standard process, platform and GC collectors."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class QueueGauges:
    """`spool_queue_depth`, `spool_queue_running` and `spool_approvals_waiting`, refreshed
    from Redis at scrape time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.depth = Gauge(
            "spool_queue_depth", "Jobs queued that no worker has claimed yet", registry=registry
        )
        self.running = Gauge(
            "spool_queue_running", "Jobs in the queue that a worker runs", registry=registry
        )
        self.approvals = Gauge(
            "spool_approvals_waiting",
            "Jobs parked until a human decides their tool calls",
            registry=registry,
        )

    async def refresh(self, redis: Redis, keys: Keys) -> None:
        """Read the queue; on a Redis error keep the last values (the scrape still answers)."""
        try:
            script = redis.register_script(QUEUE_LUA)
            where = [keys.queue, keys.approvals_due()]
            reply: list[int] = await awaited(script(keys=where, args=[SCAN_LIMIT]))
            total, running, parked = reply
        except Exception as exc:
            log.warning("queue metrics not refreshed: %s", exc)
            return
        self.depth.set(max(0, int(total) - int(running)))
        self.running.set(int(running))
        self.approvals.set(int(parked))


def exposition(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """The registry in the format the scraper's `Accept` header asks for (OpenMetrics or
    Prometheus text 1.0.0), else Prometheus text 0.0.4; and its content type."""
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
