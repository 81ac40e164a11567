"""Every Redis key Spool uses, each built by one method of `Keys`.

All keys start with the deployment's prefix (`SPOOL_KEY_PREFIX`, default `spool`), so two
deployments can share one Redis. A session is named by its tenant AND its id
(`SessionRef`): the same `session_id` under two tenants is two unrelated sessions.

Every key of one session (stream, marks, session record, job list, job records, pending
list, history, tombstone) shares one Redis Cluster hash tag, `{<tenant>/<session_id>}`:
they live in one slot, so one Lua script may touch any of them, and a cluster only has to
route by slot. Tenant names and session ids cannot contain `/`, `{` or `}` (both are
validated), so the tag is unambiguous.
"""

import re

import msgspec

DEFAULT_PREFIX = "spool"
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
# a session's keys on the stream Redis: its tag and one of these
EVENTS, MARKS, NOTIFY, TOMBSTONE = ":events", ":marks", ":notify", ":deleted"
TENANT_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
# How long a deleted session's tombstone lives: longer than any submission can take between
# writing its record and appending `job.queued` (Redis waits are bounded by 10 s), so a
# submission racing the delete cannot bring the session back. Late worker appends are
# refused for good (their job is not in the session's marks any more).
TOMBSTONE_S = 30


class SessionRef(msgspec.Struct, frozen=True):
    """A session as Redis knows it: the tenant that owns it and its id."""

    tenant: str
    session_id: str


class Keys:
    """The key names of one deployment (one prefix)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not PREFIX_PATTERN.match(prefix):
            raise ValueError(f"a key prefix is 1-64 of A-Z a-z 0-9 . _ : -, got {prefix!r}")
        self.prefix = prefix
        self.queue = f"{prefix}:queue"  # arq's queue (a zset of job ids)
        # pub/sub: every append's notice on a standalone Redis (see `shared/streams.py`)
        self.notices = f"{prefix}:notices"
        self.cancel_channel = f"{prefix}:cancel"  # job ids whose cancellation was asked
        self.wake_channel = f"{prefix}:wake"  # "a job was enqueued": idle workers poll at once
        self.workers = f"{prefix}:workers"  # zset: `<name>|<concurrency>` → lease expiry (ms)
        self.tenants = f"{prefix}:tenants"  # zset: tenants with active jobs → staleness (ms)

    # -- one session: every key carries the session's hash tag -----------------------
    # (the stream Redis's keys are the tag and a suffix: the append script builds them from
    # the tag, see `shared/streams.py`)

    def tag(self, s: SessionRef) -> str:
        """`<prefix>:{<tenant>/<session_id>}`: the common start of the session's keys."""
        return f"{self.prefix}:{{{s.tenant}/{s.session_id}}}"

    def stream(self, s: SessionRef) -> str:
        """The session's Redis Stream of events (on the stream Redis)."""
        return self.tag(s) + EVENTS

    def marks(self, s: SessionRef) -> str:
        """Hash beside the stream: per job queued/terminal ids, last seq, attempt fence;
        `_last` (the last id), `_live` (jobs queued but not ended), `_born` (first id)."""
        return self.tag(s) + MARKS

    def notify(self, s: SessionRef) -> str:
        """Pub/sub channel on a Redis Cluster: every append's new entries, and
        `session.deleted` (a standalone Redis has one channel for all, `notices`)."""
        return self.tag(s) + NOTIFY

    def session(self, s: SessionRef) -> str:
        """Hash: the owning tenant and creation time."""
        return f"{self.tag(s)}:session"

    def jobs(self, s: SessionRef) -> str:
        """List of the session's job ids in submission order."""
        return f"{self.tag(s)}:jobs"

    def records(self, s: SessionRef) -> str:
        """Hash: the records of the session's jobs, field `<job_id>.<name>` (one JSON value
        each), so that one key (and one TTL) holds every job of the session."""
        return f"{self.tag(s)}:records"

    def pending(self, s: SessionRef) -> str:
        """List: the session's unfinished jobs in order; only the head is in the arq queue."""
        return f"{self.tag(s)}:pending"

    def history(self, s: SessionRef) -> str:
        """The session's finished conversation turns."""
        return f"{self.tag(s)}:history"

    def tombstone(self, s: SessionRef) -> str:
        """String: the session was deleted; appends and new jobs are refused while it lives."""
        return self.tag(s) + TOMBSTONE

    # -- global keys -----------------------------------------------------------------

    def job_index(self, job_id: str) -> str:
        """String: the job's session as `<tenant>/<session_id>` (job ids are global)."""
        return f"{self.prefix}:jobidx:{job_id}"

    def running(self, tenant: str) -> str:
        """Zset: the tenant's jobs a worker runs now → lease expiry (ms)."""
        return f"{self.prefix}:running:{tenant}"

    def active(self, tenant: str) -> str:
        """Zset: the tenant's queued or running jobs → when the entry is stale (ms)."""
        return f"{self.prefix}:active:{tenant}"

    def idempotency(self, tenant: str, key: str) -> str:
        return f"{self.prefix}:idem:{tenant}:{key}"

    def tools(self) -> str:
        """Hash: tool name → until when (ms) a live worker serves it (workers refresh it)."""
        return f"{self.prefix}:tools"

    def approvals_due(self) -> str:
        """Sorted set: parked jobs' continuations (`<job id>~<n>`) by when they must run at
        the latest (their approvals' expiry); workers sweep it, so expiry needs no client."""
        return f"{self.prefix}:approvals:due"


def decision_field(continuation: int, call_id: str) -> str:
    """The name (after the job's own field prefix) of the job record's field holding the
    decision on `call_id` of the job's n-th parking."""
    return f"decision:{continuation}:{call_id}"


def parse_index(value: bytes) -> SessionRef | None:
    """A `job_index` value back into its session."""
    tenant, sep, session_id = value.decode().partition("/")
    return SessionRef(tenant, session_id) if sep else None


def index_value(s: SessionRef) -> str:
    return f"{s.tenant}/{s.session_id}"
