"""The arq job function: one attempt at one job, from `job.started` to its terminal event.

An attempt ends in exactly one of: `job.completed`, `job.failed` (provider error,
`expired`, `worker_lost`, `output_limit`, or `internal_error` for any unexpected
exception, so that a bug never leaves a job `running` and its session wedged),
`job.cancelled` (a cancel request), or a hand-back to arq (SIGTERM past the grace period:
the next attempt starts over with `job.retrying`). Whatever the outcome, the session's
next job is then started.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from arq import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from spool.shared.jobs import JobRecord, coalesce_ms
from spool.shared.keys import SessionRef
from spool.shared.streams import StreamClosed, job_marks
from spool.worker import memory, metrics
from spool.worker.context import WorkerState
from spool.worker.errors import OutputLimit, ProviderError
from spool.worker.lifecycle import renew_leases
from spool.worker.loop import AgentRun
from spool.worker.providers import resolve
from spool.worker.providers.base import Provider
from spool.worker.publisher import Publisher
from spool_client.events import (
    ErrorInfo,
    FinishReason,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobRetrying,
    JobStarted,
    Usage,
)

log = logging.getLogger(__name__)

FLUSH_ON_CANCEL_S = 2.0


async def run_job(
    ctx: dict[str, Any], job_id: str, tenant: str | None = None, session_id: str | None = None
) -> None:
    """arq entry point (enqueued by name as `run_job(job_id, tenant, session_id)`)."""
    state = WorkerState.of(ctx)
    try:
        if tenant is not None and session_id is not None:
            session: SessionRef | None = SessionRef(tenant, session_id)
        else:  # enqueued by an older API: look the session up
            session = await state.store.locate(job_id)
        if session is None:
            log.warning("job %s has no session (deleted or expired); skipping", job_id)
            return
        await _run(state, session, job_id, int(ctx["job_try"]))
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("job %s: Redis unreachable (%s); arq will run it again", job_id, exc)
        raise Retry(defer=1) from exc


async def _run(state: WorkerState, session: SessionRef, job_id: str, attempt: int) -> None:
    with state.running.track(job_id) as cancel:
        _, rec = await asyncio.gather(  # loaded after tracking: no cancel slips between
            renew_leases(state.clients.main, [job_id], state.settings.lease_s),
            state.store.load(session, job_id),
        )
        if rec is None:
            log.warning("job %s has no record (deleted session?); skipping", job_id)
        else:
            await _run_attempt(state, rec, attempt, cancel)
    await start_next(state, session, job_id)


async def _run_attempt(
    state: WorkerState, rec: JobRecord, attempt: int, cancel: asyncio.Event
) -> None:
    marks = await job_marks(state.clients.streams, state.keys, rec.session, rec.job_id)
    if marks.terminal_id is not None:
        return
    settings = state.settings
    pub = Publisher(
        state.batcher,
        rec.session,
        rec.job_id,
        attempt,
        first_seq=(marks.last_seq or 0) + 1,
        coalesce_s=coalesce_ms(rec.spec.parameters, settings.coalesce_ms) / 1000,
        max_events=settings.job_max_events,
        max_bytes=settings.job_max_bytes,
        max_event_bytes=settings.event_max_bytes,
    )
    await _attempt(Attempt(state, rec, attempt, pub, cancel))


async def _attempt(attempt: "Attempt") -> None:
    try:
        await attempt.run()
    except StreamClosed as exc:
        log.info("job %s attempt %d stopped: %s", attempt.rec.job_id, attempt.attempt, exc)
    except (RedisConnectionError, RedisTimeoutError):
        raise  # arq runs the job again
    except Exception:  # a bug: end the job rather than leave it (and its session) running
        log.exception("job %s attempt %d failed unexpectedly", attempt.rec.job_id, attempt.attempt)
        with contextlib.suppress(StreamClosed):
            await attempt.fail_internal()
    except asyncio.CancelledError:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(attempt.hand_back(), FLUSH_ON_CANCEL_S)
        raise
    finally:  # on the normal path everything is flushed already; this bounds error paths
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(attempt.pub.flush(), FLUSH_ON_CANCEL_S)


async def start_next(state: WorkerState, session: SessionRef, finished_job_id: str) -> None:
    """Advance the session's FIFO past finished jobs and enqueue the next one. When none is
    left the session is idle: its keys (and its jobs' index entries) start their TTL."""
    head = await state.sessions.advance(session, finished_job_id)
    while head is not None:
        marks = await job_marks(state.clients.streams, state.keys, session, head)
        if marks.terminal_id is None:
            await state.queue.enqueue(session, head)
            return
        head = await state.sessions.advance(session, head)  # cancelled while waiting
    await state.store.keep_index(session, state.settings.retention_s)


class Attempt:
    def __init__(
        self,
        state: WorkerState,
        rec: JobRecord,
        attempt: int,
        pub: Publisher,
        cancel: asyncio.Event,
    ) -> None:
        self.state = state
        self.rec = rec
        self.attempt = attempt
        self.pub = pub
        self.cancel = cancel
        self.agent: AgentRun | None = None  # once generation starts: its partial output
        self.started: datetime | None = None  # when this attempt began generating

    async def run(self) -> None:
        settings = self.state.settings
        if self.attempt > 1:
            why = self.rec.interrupted or "worker_lost"
            await self.pub.emit(JobRetrying(attempt=self.attempt, reason=why))
        if self.attempt > settings.max_tries:
            message = f"gave up after {settings.max_tries} attempts"
            await self._fail(ErrorInfo(code="worker_lost", message=message), Usage(), "")
            return
        if self.attempt == 1 and self._expired():
            message = f"waited in the queue over {settings.queue_max_wait_s:g}s"
            await self._fail(ErrorInfo(code="expired", message=message), Usage(), "")
            return
        if self.rec.cancel_requested:
            await self._cancelled("", Usage())
            return
        started = self.started = datetime.now(UTC)
        await self.pub.emit(JobStarted(attempt=self.attempt, worker=self.state.name))
        _, history = await asyncio.gather(
            self.state.store.update(
                self.rec.session,
                self.rec.job_id,
                status="running",
                attempt=self.attempt,
                started_at=started,
                interrupted=None,
            ),
            memory.load(self.state.clients.main, self.state.keys, self.rec.spec),
        )
        run = self.agent = AgentRun(self.rec.spec, self.pub, settings, history)
        try:
            reason = await self._generate(run, resolve(self.rec.model, settings))
        except (ProviderError, OutputLimit) as exc:
            error = ErrorInfo(code=exc.code, message=exc.message)
            await self._fail(error, run.usage, run.output_text)
            return
        if reason is None:
            await self._cancelled(run.output_text, run.partial_usage())
            return
        await self._complete(run, reason, started)

    async def _generate(self, run: AgentRun, provider: Provider) -> FinishReason | None:
        """Run the agent loop until it ends (its finish reason) or a cancel arrives (None)."""
        generation = asyncio.create_task(run.run(provider))
        stop = asyncio.create_task(self.cancel.wait())
        try:
            await asyncio.wait({generation, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not generation.done():
                generation.cancel()  # closes the provider's HTTP stream: no more tokens paid for
            await asyncio.gather(generation, stop, return_exceptions=True)
        if generation.cancelled():
            return None
        return generation.result()

    async def _complete(self, run: AgentRun, reason: FinishReason, started: datetime) -> None:
        settings, main = self.state.settings, self.state.clients.main
        created_ms = int(self.rec.created_at.timestamp() * 1000)
        ttft = None if run.first_delta_ms is None else run.first_delta_ms - created_ms
        if ttft is not None:
            metrics.TIME_TO_FIRST_TOKEN.observe(max(0, ttft) / 1000)
        duration = int((datetime.now(UTC) - started).total_seconds() * 1000)
        cost = run.cost()
        await memory.record(main, self.state.keys, self.rec.session, run.turns, settings)
        fields: dict[str, Any] = {
            "output_text": run.output_text,
            "usage": run.usage,
            "cost": cost,
            "ttft_ms": ttft,
            "duration_ms": duration,
            "warnings": run.warnings,
        }
        await self._finish("completed", fields)
        await self.pub.emit(JobCompleted(finish_reason=reason, **fields))
        await self.pub.flush()

    async def _fail(self, error: ErrorInfo, usage: Usage, output_text: str) -> None:
        fields: dict[str, Any] = {"error": error, "usage": usage, "output_text": output_text}
        await self._finish("failed", fields)
        await self.pub.emit(JobFailed(**fields))
        await self.pub.flush()

    async def fail_internal(self) -> None:
        """End the job `internal_error` after an unexpected exception, keeping its output."""
        run = self.agent
        usage, text = (run.partial_usage(), run.output_text) if run else (Usage(), "")
        message = "the worker failed unexpectedly; the job was ended"
        await self._fail(ErrorInfo(code="internal_error", message=message), usage, text)

    async def _cancelled(self, output_text: str, usage: Usage) -> None:
        fields: dict[str, Any] = {"output_text": output_text, "usage": usage}
        await self._finish("cancelled", fields)
        await self.pub.emit(JobCancelled(**fields))
        await self.pub.flush()

    async def _finish(self, status: str, fields: dict[str, Any]) -> None:
        """Record the outcome before the terminal event, so a client reacting to it sees it."""
        with contextlib.suppress(Exception):  # the failing events are not what we are ending
            await self.pub.flush()
        now = datetime.now(UTC)
        await self.state.store.update(
            self.rec.session, self.rec.job_id, status=status, finished_at=now, **fields
        )
        metrics.JOBS_FINISHED.labels(status).inc()
        if self.started is not None:
            metrics.JOB_DURATION.labels(status).observe((now - self.started).total_seconds())

    async def hand_back(self) -> None:
        """arq cancelled this attempt (worker shutdown): flush, and say why for the next one."""
        await self.pub.flush()
        await self.state.store.update(
            self.rec.session, self.rec.job_id, interrupted="worker_shutdown"
        )

    def _expired(self) -> bool:
        limit = self.state.settings.queue_max_wait_s
        waited = (datetime.now(UTC) - self.rec.created_at).total_seconds()
        return limit > 0 and waited > limit
