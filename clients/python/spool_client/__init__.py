"""Spool's Python client: async `SpoolClient`, blocking `SyncSpoolClient` (docs/client.md)."""

from spool_client.aio import Accepted, SpoolClient
from spool_client.errors import ClientError, SpoolClientError, StreamInterrupted, StreamTimeout
from spool_client.result import JobResult, StreamEvent
from spool_client.sync import SyncSpoolClient

__all__ = [
    "Accepted",
    "ClientError",
    "JobResult",
    "SpoolClient",
    "SpoolClientError",
    "StreamEvent",
    "StreamInterrupted",
    "StreamTimeout",
    "SyncSpoolClient",
]
