"""Which run of a job this arq job is, and whether it may run it now.

A job runs under its own arq job (`<job id>`) until it first parks on tool approvals;
from then on only its continuations (`<job id>~<n>`, for its n-th parking) run it, each
after claiming the record (`shared.approvals`): the claim succeeds once, and only when
the decisions are in, the approvals expired, or a cancel came. arq re-runs an arq job
whose worker died; such a re-run (`job_try` > 1) continues from the same point as the
run it replaces, as a new attempt (`job.retrying`).
"""

import logging

import msgspec

from spool.shared.ids import now_ms
from spool.shared.jobs import JobRecord, LoopState
from spool.worker.context import WorkerState

log = logging.getLogger(__name__)

PARKING_RETRY_MS = 1000  # a continuation that came while its job was being parked retries


class Plan(msgspec.Struct, kw_only=True):
    rec: JobRecord
    attempt: int  # the attempt number its events are fenced with
    job_try: int  # arq's count of tries of this arq job
    retry: bool = False  # an earlier try of this run died: `job.retrying` first
    parked: LoopState | None = None  # the state it continues from


async def plan(state: WorkerState, rec: JobRecord, continuation: int, job_try: int) -> Plan | None:
    """What this arq job does with `rec`, or None when it must leave the job alone."""
    if continuation == 0:
        return await _own_run(state, rec, job_try)
    if job_try > 1:  # the worker of this continuation died: take up from the same point
        parked = rec.parked
        if rec.status != "running" or parked is None or parked.continuation != continuation:
            return None
        if rec.resumed != continuation:
            return None
        return Plan(rec=rec, attempt=rec.attempt + 1, job_try=job_try, retry=True, parked=parked)
    claimed = await state.approvals.claim(rec, continuation, now_ms())
    if claimed < 0 and rec.parked is not None:  # not yet: back on the due set
        soon = now_ms() + PARKING_RETRY_MS if claimed == -2 else None
        await state.approvals.schedule(rec.job_id, rec.parked, soon)
        return None
    await state.approvals.unschedule(rec.job_id, continuation)
    if claimed == 0:
        return None
    rec = msgspec.structs.replace(rec, status="running", resumed=continuation)
    return Plan(rec=rec, attempt=max(rec.attempt, 1), job_try=job_try, parked=rec.parked)


async def _own_run(state: WorkerState, rec: JobRecord, job_try: int) -> Plan | None:
    parked = rec.parked
    if parked is None:
        return Plan(rec=rec, attempt=job_try, job_try=job_try, retry=job_try > 1)
    if rec.resumed >= parked.continuation:
        return None  # a continuation owns the job
    # this run parked the job and died before it was done parking: finish that
    log.info("job %s: finishing an interrupted parking", rec.job_id)
    if await state.approvals.park(rec, parked):
        await state.approvals.wake(rec.session, rec.job_id, parked.continuation)
    return None
