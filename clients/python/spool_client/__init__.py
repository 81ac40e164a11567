"""Spool's Python client: async `SpoolClient`, blocking `SyncSpoolClient` (docs/client.md).

Every public name is re-exported here and listed in `__all__` (checked by
tests/test_exported_members.py). Submodules: `spool_client.events` is the wire schema
of the event stream (a tagged union of msgspec Structs), `spool_client.ids` parses
stream ids.
"""

from spool_client.aio import SpoolClient
from spool_client.errors import ClientError, SpoolClientError, StreamInterrupted, StreamTimeout
from spool_client.events import Cost, ErrorInfo, Usage
from spool_client.result import JobResult, StreamEvent
from spool_client.sync import SyncSpoolClient
from spool_client.views import Accepted, CancelView, JobView, SessionView, StreamToken

__version__ = "0.1.0"

__all__ = [
    "Accepted",
    "CancelView",
    "ClientError",
    "Cost",
    "ErrorInfo",
    "JobResult",
    "JobView",
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
]
