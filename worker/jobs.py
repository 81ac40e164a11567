"""The arq job function: one attempt at one job, from `job.started` to its terminal event."""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from shared.events import (
    ErrorInfo,
    JobCompleted,
    JobFailed,
    JobRetrying,
    JobStarted,
    Usage,
)
from shared.jobs import JobRecord
from shared.streams import StreamClosed, job_marks
from worker import memory
from worker.context import WorkerState
from worker.errors import ProviderError
from worker.loop import AgentRun
from worker.providers import resolve
from worker.publisher import Publisher

log = logging.getLogger(__name__)

FLUSH_ON_CANCEL_S = 2.0


async def run_job(ctx: dict[str, Any], job_id: str) -> None:
    """arq entry point (enqueued by name as `run_job`)."""
    state = WorkerState.of(ctx)
    rec = await state.store.load(job_id)
    if rec is None:
        log.warning("job %s has no record (deleted session?); skipping", job_id)
        return
    marks = await job_marks(state.clients.streams, rec.session_id, job_id)
    if marks.terminal_id is not None:
        return  # an earlier attempt finished it; arq only lost the news
    attempt = int(ctx["job_try"])
    pub = Publisher(
        state.writer, rec.session_id, job_id, attempt, first_seq=(marks.last_seq or 0) + 1
    )
    try:
        await Attempt(state, rec, attempt, pub).run()
    except StreamClosed as exc:
        log.info("job %s attempt %d stopped: %s", job_id, attempt, exc)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(pub.flush(), FLUSH_ON_CANCEL_S)
        raise
    finally:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await pub.aclose()


class Attempt:
    def __init__(self, state: WorkerState, rec: JobRecord, attempt: int, pub: Publisher) -> None:
        self.state = state
        self.rec = rec
        self.attempt = attempt
        self.pub = pub

    async def run(self) -> None:
        if self.attempt > 1:
            await self.pub.emit(
                JobRetrying(attempt=self.attempt, reason="the previous attempt was interrupted")
            )
        if self.attempt > self.state.settings.max_tries:
            message = f"gave up after {self.state.settings.max_tries} attempts"
            await self._fail(ErrorInfo(code="worker_lost", message=message), Usage(), "")
            return
        started = datetime.now(UTC)
        await self.state.store.update(
            self.rec.job_id, status="running", attempt=self.attempt, started_at=started
        )
        await self.pub.emit(JobStarted(attempt=self.attempt, worker=self.state.name))
        settings, main = self.state.settings, self.state.clients.main
        history = await memory.load(main, self.rec.spec)
        run = AgentRun(self.rec.spec, self.pub, settings, history)
        try:
            reason = await run.run(resolve(self.rec.model, settings))
        except ProviderError as exc:
            await self._fail(
                ErrorInfo(code=exc.code, message=exc.message), run.usage, run.output_text
            )
            return
        created_ms = int(self.rec.created_at.timestamp() * 1000)
        ttft = None if run.first_delta_ms is None else run.first_delta_ms - created_ms
        duration = int((datetime.now(UTC) - started).total_seconds() * 1000)
        cost = run.cost()
        await memory.record(main, self.rec.session_id, run.turns, settings)
        await self.pub.flush()
        await self._finish(
            "completed",
            output_text=run.output_text,
            usage=run.usage,
            cost=cost,
            ttft_ms=ttft,
            duration_ms=duration,
            warnings=run.warnings,
        )
        await self.pub.emit(
            JobCompleted(
                finish_reason=reason,
                output_text=run.output_text,
                usage=run.usage,
                cost=cost,
                ttft_ms=ttft,
                duration_ms=duration,
                warnings=run.warnings,
            )
        )
        await self.pub.flush()

    async def _fail(self, error: ErrorInfo, usage: Usage, output_text: str) -> None:
        await self.pub.flush()
        await self._finish("failed", error=error, usage=usage, output_text=output_text)
        await self.pub.emit(JobFailed(error=error, usage=usage, output_text=output_text))
        await self.pub.flush()

    async def _finish(self, status: str, **fields: Any) -> None:
        await self.state.store.update(
            self.rec.job_id, status=status, finished_at=datetime.now(UTC), **fields
        )
        await self.state.store.touch_session(self.rec.session_id)
