"""Spool's Python client: async `SpoolClient`, blocking `SyncSpoolClient` (docs/client.md).

Every public name is re-exported here and listed in `__all__` (checked by
tests/test_client_exports.py). Submodules: `spool_client.events` (the wire schema of the
event stream, a tagged union of msgspec Structs), `spool_client.ids` (stream ids),
`spool_client.evals` (streaming evaluations, docs/evals.md), `spool_client.testing`
(`mock_stream`, streams without a service).
"""

from spool_client.aio import SpoolClient
from spool_client.errors import (
    ClientError,
    JobCancelledError,
    JobError,
    JobFailedError,
    SpoolClientError,
    StreamInterrupted,
    StreamTimeout,
)
from spool_client.events import Cost, ErrorInfo, Usage
from spool_client.follow import collect_events
from spool_client.result import JobResult, StreamEvent
from spool_client.sync import SyncSpoolClient
from spool_client.views import (
    Accepted,
    ApprovalView,
    CancelView,
    JobView,
    ModelInfo,
    Price,
    SessionView,
    StreamToken,
)

__version__ = "0.1.0"

__all__ = [
    "Accepted",
    "ApprovalView",
    "CancelView",
    "ClientError",
    "Cost",
    "ErrorInfo",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobResult",
    "JobView",
    "ModelInfo",
    "Price",
    "SessionView",
    "SpoolClient",
    "SpoolClientError",
    "StreamEvent",
    "StreamInterrupted",
    "StreamTimeout",
    "StreamToken",
    "SyncSpoolClient",
    "Usage",
    "__version__",
    "collect_events",
]
