"""The client's exceptions, all under `SpoolClientError`.

SpoolClientError
├── ClientError          the service answered 4xx/5xx (status, code, message)
└── StreamInterrupted    a stream could not be resumed; carries the partial result
    └── StreamTimeout  no event within the first-event or idle timeout
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spool_client.result import JobResult


class SpoolClientError(Exception):
    """Root of every exception the client raises on purpose."""


class ClientError(SpoolClientError):
    """The service answered with an error (`status`, `code`, `message`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class StreamInterrupted(SpoolClientError):
    """Resuming is impossible (retry budget spent, session gone, timeout).

    `last_event_id` is the cursor to resume from later; `partial` is the result
    collected so far when the stream was read by `collect()`, else None.
    """

    def __init__(self, last_event_id: str | None, cause: object) -> None:
        super().__init__(f"stream interrupted after event {last_event_id!r}: {cause}")
        self.last_event_id = last_event_id
        self.cause = cause
        self.partial: JobResult | None = None


class StreamTimeout(StreamInterrupted):
    """No event arrived within the first-event or the idle timeout."""
