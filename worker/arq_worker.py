"""arq's Worker as Spool runs it: polled on wake-ups, claiming many jobs per round trip,
and running each claimed job without a round trip of its own before it starts.

arq's `Worker.run_job` opens every job with a transaction (the job's payload, its try
count); the claim script does that for the whole claim (`worker/claim.py`), and
`SpoolWorker._run_claimed` is arq's `run_job` for what Spool uses of it: one function, no
cron jobs, no aborts (Spool cancels through its own channel), no results kept. What it
keeps of arq's: a job whose payload expired or cannot be read, or whose tries are used up,
ends as arq ends it (`finish_failed_job`); `Retry` and a cancel (shutdown) put the job
back to run again; any other exception, or arq's timeout, finishes it; arq's counters and
its health record see every job.
"""

import asyncio
import contextlib
import functools
import logging
from typing import Any

from arq import Retry, Worker
from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.cron import CronJob
from arq.jobs import SerializationError, deserialize_job_raw
from arq.utils import ms_to_datetime, timestamp_ms
from arq.worker import Function, RetryJob
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from spool.shared.autopipe import AutoPipeline
from spool.worker.claim import RETRY_KEY_S, Claimed, Claimer
from spool.worker.lifecycle import Running

log = logging.getLogger(__name__)

# arq's end of a finished job (`finish_job` with nothing to keep, `finish_failed_job`) as
# one script, so that it joins the loop turn's other commands (`shared/autopipe.py`):
# KEYS: in-progress, retry and job keys, arq's abort set, the queue; ARGV: the job id
FINISHED_LUA = """
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 0
"""


class SpoolWorker(Worker):
    """arq's Worker, polling on wake-up messages (not only on a timer) and kept alive through
    Redis outages (arq's own loop would exit)."""

    def __init__(
        self,
        *args: Any,
        wake: asyncio.Event,
        claimer: Claimer,
        running: Running,
        pipe: AutoPipeline,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.wake = wake
        self.claimer = claimer
        self.running = running  # holds each claimed job's lease until its task ends
        self.pipe = pipe
        self._finished_script = pipe.register(FINISHED_LUA)
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
        for job in await self.claimer.claim(self.queue_name, ids, free, timestamp_ms()):
            await self.sem.acquire()  # never waits: at most `free` jobs were claimed
            self.job_counter += 1
            self.queued_scores[job.job_id] = job.score
            self.running.hold(job.job_id, job.tenant)
            task = self.loop.create_task(self._run_claimed(job))
            task.add_done_callback(functools.partial(self._ended, job.job_id))
            self.tasks[job.job_id] = task

    def _ended(self, job_id: str, _: object) -> None:
        self.queued_scores.pop(job_id, None)
        self.running.release(job_id)
        self._release_sem_dec_counter_on_complete()

    async def _run_claimed(self, job: Claimed) -> None:
        """arq's `run_job` for a claimed job (see the module's docstring)."""
        job_id = job.job_id
        try:
            if job.payload is None:
                raise SerializationError("the job expired before it started")
            name, args, kwargs, enqueued_try, enqueued_ms = deserialize_job_raw(
                job.payload, deserializer=self.job_deserializer
            )
            function = self.functions[name]
        except (SerializationError, KeyError) as exc:
            log.warning("job %s cannot run: %r", job_id, exc)
            self.jobs_failed += 1
            await asyncio.shield(self.finish_failed_job(job_id, None))
            return
        job_try = job.job_try
        if enqueued_try and enqueued_try > job_try:
            job_try = enqueued_try
            await self.pool.setex(retry_key_prefix + job_id, RETRY_KEY_S, str(job_try))
        max_tries = self.max_tries if function.max_tries is None else function.max_tries
        if job_try > max_tries:
            log.warning("job %s: max %d tries exceeded", job_id, max_tries)
            self.jobs_failed += 1
            await asyncio.shield(self.finish_failed_job(job_id, None))
            return
        ctx = {
            **self.ctx,
            "job_id": job_id,
            "job_try": job_try,
            "enqueue_time": ms_to_datetime(enqueued_ms),
            "score": job.score,
        }
        finish, incr_score = await self._call(function, ctx, args, kwargs, job)
        await asyncio.shield(self.finish_job(job_id, finish, None, 0, False, incr_score, None))

    async def _call(
        self,
        function: Function | CronJob,
        ctx: dict[str, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        job: Claimed,
    ) -> tuple[bool, int | None]:
        """Run the job's function as arq does: whether the job is finished, and the delay
        (ms, arq's queue-score increment) before a retry."""
        timeout_s = self.job_timeout_s if function.timeout_s is None else function.timeout_s
        task = self.job_tasks[job.job_id] = self.loop.create_task(
            function.coroutine(ctx, *args, **kwargs)
        )
        try:
            await asyncio.wait_for(task, timeout_s)
        except Retry as exc:
            self.jobs_retried += 1
            defer = exc.defer_score
            return False, defer and defer + (timestamp_ms() - job.score)
        except (asyncio.CancelledError, RetryJob):  # shutdown: run again elsewhere
            self.jobs_retried += 1
            return False, None
        except Exception:
            log.exception("job %s failed", job.job_id)
            self.jobs_failed += 1
            return True, None
        finally:
            del self.job_tasks[job.job_id]
        self.jobs_complete += 1
        return True, None

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
        moved the score to the lease's expiry (`worker/claim.py`). A finished job with
        nothing to keep ends in one script (`FINISHED_LUA`)."""
        if finish and result_data is None and keep_in_progress is None:
            await self._finished(job_id)
            return
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

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """arq's `finish_failed_job`, in one script when there is no result to keep."""
        if result_data is None:
            await self._finished(job_id)
        else:
            await super().finish_failed_job(job_id, result_data)

    async def _finished(self, job_id: str) -> None:
        keys = [in_progress_key_prefix, retry_key_prefix, job_key_prefix]
        keys = [prefix + job_id for prefix in keys] + [abort_jobs_ss, self.queue_name]
        await self.pipe.script(self._finished_script, keys, [job_id])

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
