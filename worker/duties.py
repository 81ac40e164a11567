"""Background duties of a worker process beside running jobs: saying which tools it serves,
and sweeping parked jobs whose approvals expired (so expiry needs no client)."""

import asyncio
import logging

from redis.asyncio import Redis

from spool.shared import toolnames
from spool.shared.approvals import Approvals
from spool.shared.ids import now_ms
from spool.shared.keys import Keys
from spool.shared.queue import parse_arq_id
from spool.shared.settings import Settings
from spool.shared.store import JobStore
from spool.worker.tools import build_registry

log = logging.getLogger(__name__)

SWEEP_S = 1.0  # how often a worker looks for expired approvals


def tool_names(settings: Settings) -> list[str]:
    try:
        return sorted(build_registry(settings.tools_module).tools)
    except (ImportError, TypeError) as exc:  # the job that asks for a tool reports it
        log.warning("cannot load tools: %s", exc)
        return []


async def publish_tools(redis: Redis, keys: Keys, settings: Settings) -> None:
    names = tool_names(settings)
    while True:
        try:
            await toolnames.publish(redis, keys, names, toolnames.ttl_s(settings.tools_refresh_s))
        except Exception as exc:
            log.warning("publishing tool names failed: %s", exc)
        await asyncio.sleep(settings.tools_refresh_s)


async def sweep_approvals(approvals: Approvals, store: JobStore, every_s: float = SWEEP_S) -> None:
    """Enqueue the continuation of every parked job whose approvals expired. Enqueueing is
    idempotent and the continuation claims the job before running it, so workers sweeping
    at the same time do no harm."""
    while True:
        try:
            for arq_id in await approvals.due(now_ms()):
                job_id, continuation = parse_arq_id(arq_id)
                session = await store.locate(job_id)
                if session is None:  # deleted or expired
                    await approvals.unschedule(job_id, continuation)
                else:
                    await approvals.wake(session, job_id, continuation)
        except Exception as exc:
            log.warning("approval sweep failed: %s", exc)
        await asyncio.sleep(every_s)
