"""Spool's Python client: async `SpoolClient`, blocking `SyncSpoolClient` (docs/client.md)."""

from shared.client.aio import Accepted, SpoolClient
from shared.client.errors import ClientError, StreamInterrupted, StreamTimeout
from shared.client.result import JobResult, StreamEvent
from shared.client.sync import SyncSpoolClient

__all__ = [
    "Accepted",
    "ClientError",
    "JobResult",
    "SpoolClient",
    "StreamEvent",
    "StreamInterrupted",
    "StreamTimeout",
    "SyncSpoolClient",
]
