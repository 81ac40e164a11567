"""Running a worker process: arq underneath, Spool's state in its start-up and shut-down."""

import asyncio
import contextlib
import functools
import logging
from pathlib import Path
from typing import Any

from arq import Worker
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from spool.shared import serializer
from spool.shared.connections import RedisClients
from spool.shared.jobs import MAX_TIMEOUT_S
from spool.shared.settings import Settings
from spool.worker.claim import Claimer
from spool.worker.context import WorkerState
from spool.worker.jobs import run_job

log = logging.getLogger(__name__)

# the pub/sub connection and the stream writer's own stay checked out: one more is needed
WORKER_MIN_CONNECTIONS = 3


class SpoolWorker(Worker):
    """arq's Worker, polling on wake-up messages (not only on a timer) and kept alive through
    Redis outages (arq's own loop would exit)."""

    def __init__(self, *args: Any, wake: asyncio.Event, claimer: Claimer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wake = wake
        self.claimer = claimer
        self.queued_scores: dict[str, int] = {}  # running job → the score it was queued with

    async def main(self) -> None:
        """arq's `Worker.main` with its fixed sleep between polls replaced by a wake-up wait."""
        log.info(
            "Starting worker for %d functions: %s", len(self.functions), ", ".join(self.functions)
        )
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        while True:
            self.wake.clear()
            await self._poll_iteration()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_delay_s):
                    await self.wake.wait()

    async def start_jobs(self, job_ids: list[bytes] | None = None) -> None:
        """arq's `start_jobs`, claiming every free slot's job in one round trip (None: the
        claim reads arq's window of the queue itself)."""
        free = self.max_jobs - self.job_counter
        # the first ones may be running: claim skips them
        ids = self.queue_read_limit if job_ids is None else [j.decode() for j in job_ids]
        in_progress_ms = int(self.in_progress_timeout_s * 1000)
        for job_id, score in await self.claimer.claim(
            self.queue_name, ids, free, timestamp_ms(), in_progress_ms
        ):
            await self.sem.acquire()  # never waits: at most `free` jobs were claimed
            self.job_counter += 1
            self.queued_scores[job_id] = score
            task = self.loop.create_task(self.run_job(job_id, score))
            task.add_done_callback(functools.partial(self._ended, job_id))
            self.tasks[job_id] = task

    def _ended(self, job_id: str, _: object) -> None:
        self.queued_scores.pop(job_id, None)
        self._release_sem_dec_counter_on_complete()

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's `finish_job`, but a job run again (retried, or handed back at shutdown) gets
        its due time as an absolute score: the queued score plus arq's increment (what
        arq's `ZINCRBY` gives on a score left alone), because the claim and the heartbeat
        moved the score to the lease's expiry (`worker/claim.py`)."""
        if finish or job_id not in self.queued_scores:
            await super().finish_job(
                job_id,
                finish,
                result_data,
                result_timeout_s,
                keep_result_forever,
                incr_score,
                keep_in_progress,
            )
            return
        due = self.queued_scores[job_id] + (incr_score or 0)
        async with self.pool.pipeline(transaction=True) as tr:
            if keep_in_progress is None:
                tr.delete(in_progress_key_prefix + job_id)
            else:
                tr.pexpire(in_progress_key_prefix + job_id, int(keep_in_progress * 1000))
            tr.zadd(self.queue_name, {job_id: due}, xx=True)
            await tr.execute()

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self.wake.set()  # a slot is free: look at the queue now, not at the next poll

    async def _poll_iteration(self) -> None:
        try:
            await self._poll()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("queue poll failed (%s); retrying", exc)
            await asyncio.sleep(0.5)

    async def _poll(self) -> None:
        """arq's `_poll_iteration` (without burst mode and aborts, which Spool does not use),
        its `ZRANGEBYSCORE` inside the claim script: a wake-up is one round trip from a
        claimed job."""
        if self.allow_pick_jobs and self.job_counter < self.max_jobs:
            await self.start_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # errors in run_job propagate, as in arq
        await self.heart_beat()


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
