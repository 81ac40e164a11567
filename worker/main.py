"""Running a worker process: arq underneath, Spool's state in its start-up and shut-down."""

import asyncio
import logging
from pathlib import Path
from typing import Any

from arq import Worker
from arq.worker import func

from spool.shared import serializer
from spool.shared.connections import RedisClients
from spool.shared.jobs import MAX_TIMEOUT_S
from spool.shared.settings import Settings
from spool.worker.arq_worker import SpoolWorker
from spool.worker.claim import Claimer
from spool.worker.context import WorkerState
from spool.worker.jobs import run_job

log = logging.getLogger(__name__)

# the pub/sub connection and the stream writer's own stay checked out: one more is needed
WORKER_MIN_CONNECTIONS = 3


def build_worker(
    settings: Settings,
    concurrency: int,
    ready_file: Path | None = None,
    *,
    handle_signals: bool = True,
) -> Worker:
    """An arq Worker running `run_job`, with msgspec serialization and Spool's state in ctx.

    `ready_file` is created once the worker is connected and about to take jobs: the
    readiness signal `spool dev` waits for. `handle_signals=False` leaves SIGINT/SIGTERM
    alone (a worker inside a test process, tests/inprocess.py).
    """
    # waits for a connection as long as it takes, and never below 3 (see RedisClients)
    clients = RedisClients(settings, pool_wait_s=None, min_connections=WORKER_MIN_CONNECTIONS)
    state = WorkerState(settings, clients, concurrency)

    async def on_startup(ctx: dict[str, Any]) -> None:
        state.install(ctx)
        await state.start()
        log.info("worker %s ready (concurrency %d)", state.name, concurrency)
        if ready_file is not None:
            await asyncio.to_thread(ready_file.touch)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await state.aclose()

    return SpoolWorker(
        wake=state.wake,
        claimer=Claimer(clients.main, clients.keys, settings.lease_s, settings.tenant_max_running),
        running=state.running,
        pipe=state.pipe,
        functions=[
            func(
                run_job,
                name="run_job",
                # one more try than Spool's own bound, so that the last try can write `worker_lost`
                max_tries=settings.max_tries + 1,
                # Spool enforces each job's own deadline (`timeout_s`); arq's bound only
                # catches a job Spool failed to stop
                timeout=MAX_TIMEOUT_S + 60,
            )
        ],
        queue_name=clients.keys.queue,
        redis_pool=state.arq,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        job_serializer=serializer.serialize,
        job_deserializer=serializer.deserialize,
        max_jobs=concurrency,
        keep_result=0,
        poll_delay=settings.poll_s,
        handle_signals=handle_signals,
        # SIGTERM: stop taking jobs, give running ones this long, then hand them back
        job_completion_wait=int(settings.shutdown_grace_s),
    )


async def serve(
    settings: Settings,
    concurrency: int,
    ready_file: Path | None = None,
    *,
    handle_signals: bool = True,
) -> None:
    worker = build_worker(settings, concurrency, ready_file, handle_signals=handle_signals)
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        pass
    finally:
        await worker.close()
