"""Cancelling a job from any API instance, whichever worker runs it.

The API marks the record (`cancel_requested`), then publishes the job id on
`Keys.cancel_channel`: the worker running it stops the generation at once, closes the
provider's stream and writes `job.cancelled` with the partial output and usage. A job
no worker has started yet is ended here, by an append that only succeeds while no
attempt has begun; whichever side writes first, the job gets one terminal event. A job
parked on tool approvals has no worker: its continuation is enqueued, and it writes
`job.cancelled` with the output so far.
"""

from datetime import UTC, datetime

from spool.api import metrics
from spool.api.state import AppState
from spool.shared.ids import now_ms
from spool.shared.jobs import JobRecord
from spool.shared.keys import SessionRef
from spool.shared.streams import NOT_STARTED_ONLY, Outgoing, StreamClosed, WorkerOwned, job_marks
from spool_client.events import JobCancelled, Usage, encoder


async def request_cancel(state: AppState, session: SessionRef, job_id: str) -> None:
    await state.store.update(session, job_id, cancel_requested=True)
    await state.clients.main.publish(state.keys.cancel_channel, job_id)
    rec = await state.store.load(session, job_id)
    if rec is None:
        return
    if rec.waiting and rec.parked is not None:
        # parked on approvals: no worker holds it, so its continuation ends it (cancelled);
        # a worker still parking it sees the request and enqueues the continuation itself
        await state.approvals.wake(session, job_id, rec.parked.continuation)
        return
    await _cancel_if_not_started(state, rec)


async def _cancel_if_not_started(state: AppState, rec: JobRecord) -> None:
    marks = await job_marks(state.clients.streams, state.keys, rec.session, rec.job_id)
    seq = (marks.last_seq or 0) + 1
    event = JobCancelled(job_id=rec.job_id, seq=seq, ts=now_ms(), output_text="", usage=Usage())
    try:
        await state.writer.append(
            rec.session,
            rec.job_id,
            NOT_STARTED_ONLY,
            [Outgoing("job.cancelled", seq, encoder.encode(event))],
        )
    except (WorkerOwned, StreamClosed):
        return  # a worker runs it (and will end it), or it has already ended
    await state.store.update(
        rec.session,
        rec.job_id,
        status="cancelled",
        finished_at=datetime.now(UTC),
        output_text="",
        usage=Usage(),
    )
    metrics.JOBS_FINISHED.labels("cancelled").inc()
