"""Spool's Python client: async `SpoolClient`, blocking `SyncSpoolClient` (docs/client.md).

Submodules: `spool_client.events` (the wire schema), `spool_client.evals` (streaming
evaluations, docs/evals.md), `spool_client.testing` (`mock_stream`, streams without a
service).
"""

from spool_client.aio import Accepted, SpoolClient
from spool_client.errors import (
    ClientError,
    JobCancelledError,
    JobError,
    JobFailedError,
    SpoolClientError,
    StreamInterrupted,
    StreamTimeout,
)
from spool_client.follow import collect_events
from spool_client.result import JobResult, StreamEvent
from spool_client.sync import SyncSpoolClient

__all__ = [
    "Accepted",
    "ClientError",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobResult",
    "SpoolClient",
    "SpoolClientError",
    "StreamEvent",
    "StreamInterrupted",
    "StreamTimeout",
    "SyncSpoolClient",
    "collect_events",
]
