"""Typed answers of Spool's JSON routes (contract §2, §4), as the client decodes them.

These are the client's own view of the wire, kept apart from the server's structs:
unknown fields from a newer service are ignored and a status is a plain string, so an
older client keeps working when the service adds a field or a status.
"""

from datetime import datetime

import msgspec

from spool_client.events import Cost, ErrorInfo, Usage

FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled"})


class Accepted(msgspec.Struct, kw_only=True):
    """`202` answer of `POST /v1/jobs`."""

    job_id: str
    session_id: str
    status: str
    events_url: str


class JobView(msgspec.Struct, kw_only=True):
    """`GET /v1/jobs/{job_id}`: the job record.

    `status` is `queued`, `running`, `completed`, `failed` or `cancelled` (or a status a
    newer service added, such as `awaiting_approval`).
    """

    job_id: str
    session_id: str
    status: str
    attempt: int = 0
    model: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output_text: str | None = None
    usage: Usage | None = None
    cost: Cost | None = None
    error: ErrorInfo | None = None
    ttft_ms: int | None = None
    duration_ms: int | None = None
    metadata: dict[str, str] = {}

    @property
    def done(self) -> bool:
        """The job has finished (completed, failed or cancelled)."""
        return self.status in FINISHED_STATUSES


class CancelView(msgspec.Struct, kw_only=True):
    """`POST /v1/jobs/{job_id}/cancel`: `cancelling` (202), or a finished job's status (200)."""

    job_id: str
    status: str


class SessionView(msgspec.Struct, kw_only=True):
    """`GET /v1/sessions/{session_id}`: the session's jobs, oldest first."""

    session_id: str
    created_at: datetime | None = None
    jobs: list[JobView] = []
    busy: bool = False


class StreamToken(msgspec.Struct, kw_only=True):
    """`POST /v1/sessions/{session_id}/token`: a short-lived token for `?token=`."""

    token: str
    expires_in: int
    events_url: str


class ApprovalView(msgspec.Struct, kw_only=True):
    """`POST /v1/jobs/{job_id}/approvals/{call_id}`: the decision as recorded."""

    call_id: str
    approved: bool


class Price(msgspec.Struct, kw_only=True):
    input: float
    output: float
    currency: str = "USD"
    per: str = "1M tokens"


class ModelInfo(msgspec.Struct, kw_only=True):
    """One entry of `GET /v1/models`: a model this deployment can run."""

    model: str
    provider: str = ""
    streaming: bool = True
    thinking: bool = False
    tools: bool = False
    price: Price | None = None
