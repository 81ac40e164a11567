"""The arq job function: one attempt at one job, from `job.started` to its terminal event.

An attempt ends in exactly one of: `job.completed`, `job.failed` (provider error,
`timeout`, `expired`, `worker_lost`, `output_limit`, or `internal_error` for any
unexpected exception, so that a bug never leaves a job `running` and its session wedged),
`job.cancelled` (a cancel request), a hand-back to arq (SIGTERM past the grace period: the
next attempt starts over with `job.retrying`), or parking: tool calls wait for approval,
the job's state is in its record and the worker lets it go; a continuation (its own arq
job, `worker/continuation.py`) takes it up later. Unless the job parked (or another run
owns it), the session's next job is then started.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from arq import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from spool.shared.ids import now_ms
from spool.shared.jobs import (
    ChainStepDone,
    JobRecord,
    LoopState,
    Message,
    behind_ms,
    coalesce_ms,
)
from spool.shared.keys import SessionRef
from spool.shared.logs import log_context
from spool.shared.queue import parse_arq_id
from spool.shared.store import decode_record
from spool.shared.streams import JobMarks, StreamClosed, job_marks
from spool.worker import memory, metrics
from spool.worker.context import WorkerState
from spool.worker.continuation import Plan, plan
from spool.worker.errors import OutputLimit, ProviderError
from spool.worker.generation import Generation
from spool.worker.parking import Parked
from spool.worker.providers import resolve
from spool.worker.publisher import Publisher
from spool_client.events import (
    ErrorInfo,
    FinishReason,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobRetrying,
    JobStarted,
    TextDelta,
    Usage,
)

log = logging.getLogger(__name__)

FLUSH_ON_CANCEL_S = 2.0


async def run_job(
    ctx: dict[str, Any], job_id: str, tenant: str | None = None, session_id: str | None = None
) -> None:
    """arq entry point (enqueued by name as `run_job(job_id, tenant, session_id)`)."""
    state = WorkerState.of(ctx)
    arq_id = str(ctx.get("job_id") or job_id)
    try:
        if tenant is not None and session_id is not None:
            session: SessionRef | None = SessionRef(tenant, session_id)
        else:  # enqueued by an older API, or by an approvals sweep: look the session up
            session = await state.store.locate(job_id)
        if session is None:
            log.warning("job %s has no session (deleted or expired); skipping", job_id)
            await state.approvals.unschedule(job_id, parse_arq_id(arq_id)[1])
            return
        with log_context(job_id=job_id, session_id=session.session_id):
            await _run(state, session, job_id, arq_id, int(ctx["job_try"]))
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("job %s: Redis unreachable (%s); arq will run it again", job_id, exc)
        raise Retry(defer=1) from exc


async def _run(
    state: WorkerState, session: SessionRef, job_id: str, arq_id: str, job_try: int
) -> None:
    _, continuation = parse_arq_id(arq_id)
    with state.running.track(job_id) as cancel:
        # the record is read after tracking: no cancel slips between (the lease is held
        # since the claim: `Running.hold`)
        rec, marks, history = await _start_reads(state, session, job_id)
        if rec is None:
            log.warning("job %s has no record (deleted session?); skipping", job_id)
            await state.approvals.unschedule(job_id, continuation)
        elif await _run_attempt(state, rec, marks, history, continuation, job_try, cancel) == (
            "parked"
        ):
            return  # parked, or another run owns the job: the session's next job waits
    await start_next(state, session, job_id)


async def _start_reads(
    state: WorkerState, session: SessionRef, job_id: str
) -> tuple[JobRecord | None, JobMarks, list[Message]]:
    """The job's record, its marks and its session's history, auto-pipelined (with the
    streams on the main Redis): a burst of job starts shares round trips and pooled
    connections instead of queueing for the worker's pool, three commands a start."""
    main, keys, pipe = state.clients.main, state.keys, state.pipe
    if state.clients.streams is not main:
        return await asyncio.gather(
            state.store.load(session, job_id),
            job_marks(state.clients.streams, keys, session, job_id),
            memory.read(main, keys, session),
        )
    key, fields = state.store.record_query(session, job_id)
    record, marks, history = await asyncio.gather(
        pipe.call("HMGET", key, *fields),
        pipe.call("HMGET", keys.marks(session), *JobMarks.fields(job_id)),
        pipe.call("LRANGE", keys.history(session), 0, -1),
    )
    return decode_record(record), JobMarks.of(marks), memory.decode_history(history)


async def _run_attempt(
    state: WorkerState,
    rec: JobRecord,
    marks: JobMarks,
    history: list[Message],
    continuation: int,
    job_try: int,
    cancel: asyncio.Event,
) -> str:
    if marks.terminal_id is not None:
        await state.approvals.unschedule(rec.job_id, continuation)
        return "ended"
    todo = await plan(state, rec, continuation, job_try)
    if todo is None:
        return "parked"
    settings = state.settings
    pub = Publisher(
        state.batcher,
        rec.session,
        rec.job_id,
        todo.attempt,
        first_seq=(marks.last_seq or 0) + 1,
        coalesce_s=coalesce_ms(rec.spec.parameters, settings.coalesce_ms) / 1000,
        behind_s=behind_ms(rec.spec.parameters, settings.behind_ms) / 1000,
        max_events=settings.job_max_events,
        max_bytes=settings.job_max_bytes,
        max_event_bytes=settings.event_max_bytes,
    )
    history = history if rec.spec.history else []
    return await _attempt(Attempt(state, todo.rec, todo, pub, cancel, history))


async def _attempt(attempt: "Attempt") -> str:
    try:
        return await attempt.run()
    except StreamClosed as exc:
        log.info("job %s attempt %d stopped: %s", attempt.rec.job_id, attempt.attempt, exc)
        return "stopped"
    except (RedisConnectionError, RedisTimeoutError):
        raise  # arq runs the job again
    except Exception:  # a bug: end the job rather than leave it (and its session) running
        log.exception("job %s attempt %d failed unexpectedly", attempt.rec.job_id, attempt.attempt)
        with contextlib.suppress(StreamClosed):
            await attempt.fail_internal()
        return "failed"
    except asyncio.CancelledError:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(attempt.hand_back(), FLUSH_ON_CANCEL_S)
        raise
    finally:  # on the normal path everything is flushed already; this bounds error paths
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(attempt.pub.flush(), FLUSH_ON_CANCEL_S)
        # the attempt and its generation (which holds the attempt's save callbacks) are a
        # reference cycle: ended here, the job's state is freed now, not by the
        # collector's next pass over a wave of ended jobs at once
        attempt.gen = None


async def start_next(state: WorkerState, session: SessionRef, finished_job_id: str) -> None:
    """Advance the session's FIFO past finished jobs and enqueue the next one. When none is
    left the session is idle: its keys (and its jobs' index entries) start their TTL."""
    ended_keys = state.limits.ended_keys(session.tenant)
    head = await state.sessions.finish(session, finished_job_id, ended_keys)
    while head is not None:
        marks = await job_marks(state.clients.streams, state.keys, session, head)
        if marks.terminal_id is None:
            await state.queue.enqueue(session, head)
            return
        head = await state.sessions.finish(session, head, ended_keys)  # cancelled while waiting


class Attempt:
    def __init__(
        self,
        state: WorkerState,
        rec: JobRecord,
        todo: Plan,
        pub: Publisher,
        cancel: asyncio.Event,
        history: list[Message],
    ) -> None:
        self.state = state
        self.history = history  # the session's earlier turns this job sees
        self.rec = rec
        self.todo = todo
        self.attempt = todo.attempt
        self.pub = pub
        self.cancel = cancel
        self.started = datetime.now(UTC)
        self.gen: Generation | None = None  # once generation starts: its partial output

    async def run(self) -> str:
        """The attempt's outcome: `completed`, `failed`, `cancelled` or `parked`."""
        settings, parked = self.state.settings, self.todo.parked
        if self.todo.retry:
            why = self.rec.interrupted or "worker_lost"
            await self.pub.emit(JobRetrying(attempt=self.attempt, reason=why))
            if parked is not None and parked.text:  # the output so far, as before the pause
                await self.pub.emit(
                    TextDelta(step=parked.step, chain_step=parked.chain_step, delta=parked.text)
                )
        if self.todo.job_try > settings.max_tries:
            message = f"gave up after {settings.max_tries} attempts"
            return await self._fail(ErrorInfo(code="worker_lost", message=message), None)
        if self.attempt == 1 and parked is None and self._expired():
            message = f"waited in the queue over {settings.queue_max_wait_s:g}s"
            return await self._fail(ErrorInfo(code="expired", message=message), None)
        gen = self.gen = self._generation()
        if self.rec.cancel_requested:
            return await self._cancelled(gen)
        started = (
            None if parked is not None else JobStarted(attempt=self.attempt, worker=self.state.name)
        )
        deadline, fields = self._start()
        # the record says `running` while the generation starts, not before it: off the
        # path to the first token, and written before any outcome is
        recorded = asyncio.ensure_future(self._update(**fields))
        try:
            try:
                reason = await self._generate(gen, deadline, started)
            finally:
                await recorded
        except (ProviderError, OutputLimit) as exc:
            return await self._fail(ErrorInfo(code=exc.code, message=exc.message), gen)
        except Parked as exc:
            return await self._park(exc.state)
        if reason is None:
            return await self._cancelled(gen)
        return await self._complete(gen, reason)

    def _generation(self) -> Generation:
        parked = self.todo.parked
        gen = Generation(
            self.rec.spec,
            self.pub,
            self.state.settings,
            self.history,
            self.rec.chain_done,
            self._save_steps,
            self._save_parked,
            continuation=self.rec.resumed,
        )
        if parked is not None and parked.chain_step == gen.current.chain_step:
            gen.current.restore(parked)
        return gen

    def _start(self) -> tuple[int, dict[str, Any]]:
        """The whole-job deadline (ms), moved on by time parked, and the record's fields
        that say the attempt started."""
        now = now_ms()
        timeout_s = self.rec.spec.timeout_s or self.state.settings.job_timeout_s
        deadline = self.rec.deadline_ms or now + int(timeout_s * 1000)
        parked = self.todo.parked
        if parked is not None and not self.todo.retry:
            deadline += max(0, now - parked.parked_at_ms)
        fields: dict[str, Any] = {
            "status": "running",
            "attempt": self.attempt,
            "interrupted": None,
            "deadline_ms": deadline,
        }
        self.started = self.rec.started_at or datetime.now(UTC)
        if self.rec.started_at is None:
            fields["started_at"] = self.started
        return deadline, fields

    async def _update(self, **fields: Any) -> None:
        await self.state.store.update(self.rec.session, self.rec.job_id, **fields)

    async def _save_steps(self, done: list[ChainStepDone]) -> None:
        await self._update(chain_done=done)

    async def _save_parked(self, parked: LoopState) -> None:
        await self._update(parked=parked)

    async def _generate(
        self, gen: Generation, deadline_ms: int, started: JobStarted | None
    ) -> FinishReason | None:
        """Emit `started` (if any) and run the job until it ends (its finish reason), a cancel
        arrives (None), it parks (`Parked`) or its deadline passes (`ProviderError`
        `timeout`)."""
        todo = self.todo
        decisions = {}
        if todo.parked is not None:
            decisions = await self.state.approvals.decisions(self.rec, todo.parked)
        generation = asyncio.create_task(
            gen.run(lambda model: resolve(model, self.state.settings), todo.parked, decisions)
        )
        stop = asyncio.create_task(self.cancel.wait())
        remaining = max(0.0, (deadline_ms - now_ms()) / 1000)
        try:
            if started is not None:
                # emitted after the generation task is scheduled, which then runs before the
                # batcher: `job.started` and the generation's first events share one round.
                # It is stamped before the task runs: emit waits only when the publisher is
                # full, and at most two events (a retry's) precede it.
                await self.pub.emit(started)
            await asyncio.wait(
                {generation, stop}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
            if not generation.done():
                generation.cancel()  # closes the provider's HTTP stream: no more tokens paid for
            await asyncio.gather(generation, stop, return_exceptions=True)
        if generation.cancelled():
            if self.cancel.is_set():
                return None
            timeout_s = self.rec.spec.timeout_s or self.state.settings.job_timeout_s
            message = f"the job ran past its timeout of {timeout_s:g}s"
            raise ProviderError("timeout", message)
        return generation.result()

    async def _park(self, parked: LoopState) -> str:
        """Let the job go while its tool calls wait; enqueue its continuation at once if
        every decision came in while it was parking."""
        await self.pub.flush()
        if await self.state.approvals.park(self.rec, parked):
            await self.state.approvals.wake(self.rec.session, self.rec.job_id, parked.continuation)
        return "parked"

    async def _complete(self, gen: Generation, reason: FinishReason) -> str:
        created_ms = int(self.rec.created_at.timestamp() * 1000)
        first = gen.first_delta_ms
        ttft = None if first is None else first - created_ms
        if ttft is not None:
            metrics.TIME_TO_FIRST_TOKEN.observe(max(0, ttft) / 1000)
        duration = int((datetime.now(UTC) - self.started).total_seconds() * 1000)
        cost = gen.cost()
        fields: dict[str, Any] = {
            "output_text": gen.output_text,
            "usage": gen.usage,
            "cost": cost,
            "ttft_ms": ttft,
            "duration_ms": duration,
            "warnings": gen.warnings,
            "stop_reason": gen.stop_reason,
        }
        await self._finish("completed", fields, gen.turns())
        await self.pub.emit(JobCompleted(finish_reason=reason, **fields))
        await self.pub.flush()
        return "completed"

    async def _fail(self, error: ErrorInfo, gen: Generation | None) -> str:
        fields: dict[str, Any] = {
            "error": error,
            "usage": gen.partial_usage() if gen else Usage(),
            "output_text": gen.output_text if gen else "",
            "cost": gen.cost(partial=True) if gen else None,
        }
        await self._finish("failed", fields)
        await self.pub.emit(JobFailed(**fields))
        await self.pub.flush()
        return "failed"

    async def fail_internal(self) -> None:
        """End the job `internal_error` after an unexpected exception, keeping its output."""
        message = "the worker failed unexpectedly; the job was ended"
        await self._fail(ErrorInfo(code="internal_error", message=message), self.gen)

    async def _cancelled(self, gen: Generation) -> str:
        fields: dict[str, Any] = {
            "output_text": gen.output_text,
            "usage": gen.partial_usage(),
            "cost": gen.cost(partial=True),
        }
        await self._finish("cancelled", fields)
        await self.pub.emit(JobCancelled(**fields))
        await self.pub.flush()
        return "cancelled"

    async def _finish(
        self, status: str, fields: dict[str, Any], turns: list[Message] | None = None
    ) -> None:
        """Record the outcome before the terminal event, so a client reacting to it sees it;
        a completed job's `turns` join the session's history in the same call."""
        with contextlib.suppress(Exception):  # the failing events are not what we are ending
            await self.pub.flush()
        now = datetime.now(UTC)
        outcome = {"status": status, "finished_at": now, **fields}
        if turns is None:
            await self._update(**outcome)
        else:
            state, s = self.state, self.rec.session
            done = (self.rec.job_id, outcome)
            await memory.record(state.pipe, state.keys, s, turns, state.settings, done)
        metrics.JOBS_FINISHED.labels(status).inc()
        metrics.JOB_DURATION.labels(status).observe((now - self.started).total_seconds())
        log.info("job %s %s (attempt %d)", self.rec.job_id, status, self.attempt)

    async def hand_back(self) -> None:
        """arq cancelled this attempt (worker shutdown): flush, and say why for the next one."""
        await self.pub.flush()
        await self._update(interrupted="worker_shutdown")

    def _expired(self) -> bool:
        limit = self.state.settings.queue_max_wait_s
        waited = (datetime.now(UTC) - self.rec.created_at).total_seconds()
        return limit > 0 and waited > limit
