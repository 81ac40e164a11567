"""Every Redis key Spool uses, each built by one function.

Session keys share the `{session_id}` hash tag so that one Lua script may touch a
session's stream and marks together (and a Redis Cluster keeps them in one slot).
"""

PREFIX = "spool"
QUEUE_NAME = f"{PREFIX}:queue"
HUB_CHANNEL = f"{PREFIX}:hub"
CANCEL_CHANNEL = f"{PREFIX}:cancel"  # job ids whose cancellation was asked; every worker listens
WAKE_CHANNEL = f"{PREFIX}:wake"  # "a job was enqueued": idle workers poll the queue at once


def stream_key(session_id: str) -> str:
    """The session's Redis Stream of events (on the stream Redis)."""
    return f"{PREFIX}:{{{session_id}}}:events"


def marks_key(session_id: str) -> str:
    """Per-job bookkeeping beside the stream: queued/terminal ids, last seq, attempt fence."""
    return f"{PREFIX}:{{{session_id}}}:marks"


def notify_channel(session_id: str) -> str:
    """Pub/sub channel told the last id after every append to the session's stream."""
    return f"{PREFIX}:{{{session_id}}}:notify"


def session_key(session_id: str) -> str:
    """Hash: the owning tenant and creation time."""
    return f"{PREFIX}:{{{session_id}}}:session"


def session_jobs_key(session_id: str) -> str:
    """List of the session's job ids in submission order."""
    return f"{PREFIX}:{{{session_id}}}:jobs"


def pending_key(session_id: str) -> str:
    """List: the session's unfinished jobs in order; only the head is in the arq queue."""
    return f"{PREFIX}:{{{session_id}}}:pending"


def history_key(session_id: str) -> str:
    """The session's finished conversation turns."""
    return f"{PREFIX}:{{{session_id}}}:history"


def job_key(job_id: str) -> str:
    """Hash: the job record (status, spec, output, usage, timings)."""
    return f"{PREFIX}:job:{job_id}"


def idempotency_key(tenant: str, key: str) -> str:
    return f"{PREFIX}:idem:{tenant}:{key}"


def tools_key() -> str:
    """Hash: tool name → until when (ms) a live worker serves it (workers refresh it)."""
    return f"{PREFIX}:tools"


def approvals_due_key() -> str:
    """Sorted set: parked jobs' continuations (`<job id>~<n>`) by when they must run at the
    latest (their approvals' expiry); workers sweep it, so expiry needs no client."""
    return f"{PREFIX}:approvals:due"


def decision_field(continuation: int, call_id: str) -> str:
    """The job record's field holding the decision on `call_id` of its n-th parking."""
    return f"decision:{continuation}:{call_id}"
