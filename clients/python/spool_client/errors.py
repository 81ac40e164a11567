"""The client's exceptions, all under `SpoolClientError`.

SpoolClientError
├── ClientError            the service answered 4xx/5xx (status, code, message)
├── StreamInterrupted      a stream could not be resumed; carries the partial result
│   └── StreamTimeout      no event within the first-event or idle timeout
└── JobError               with raise_on_failure=True: the job ended without completing;
    ├── JobFailedError     `job.failed` (code, message); `result` is the partial result
    └── JobCancelledError  `job.cancelled`; `result` is the partial result
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


class JobError(SpoolClientError):
    """The job ended without completing; `result` holds what it produced (partial text, usage)."""

    def __init__(self, message: str, result: "JobResult") -> None:
        super().__init__(message)
        self.result = result


class JobFailedError(JobError):
    """The job ended with `job.failed`: `code` and `message` are the service's error."""

    def __init__(self, result: "JobResult") -> None:
        code = result.error.code if result.error else "unknown"
        message = result.error.message if result.error else "the job failed"
        super().__init__(f"job {result.job_id} failed: {code}: {message}", result)
        self.code = code
        self.message = message


class JobCancelledError(JobError):
    """The job ended with `job.cancelled` (or its session was deleted)."""

    def __init__(self, result: "JobResult") -> None:
        super().__init__(f"job {result.job_id} was cancelled", result)
