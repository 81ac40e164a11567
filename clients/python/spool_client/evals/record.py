"""What a streaming evaluation measures: one job's stream as the client saw it.

Times are the client's: seconds from the request (`POST /v1/jobs`) to each text
chunk's arrival, read from a monotonic clock.
"""

import time
from dataclasses import dataclass, field

from spool_client.events import TERMINAL_TYPES, Usage
from spool_client.result import StreamEvent


@dataclass
class StreamRecord:
    """The text chunks of a job's final attempt, when each arrived, and how the job ended.

    `status` is `completed`, `failed` or `cancelled` (the terminal event), `running` if
    the stream ended without one, or `error` if the job could not be submitted or
    followed (`error` says why). `usage` is what the terminal event reported.
    """

    chunks: list[str] = field(default_factory=list)
    chunk_times: list[float] = field(default_factory=list)
    total_seconds: float | None = None
    status: str = "running"
    error: str | None = None
    usage: Usage | None = None

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def first_token_seconds(self) -> float | None:
        return self.chunk_times[0] if self.chunk_times else None

    @property
    def gaps(self) -> list[float]:
        """Seconds between consecutive chunks' arrivals."""
        return [b - a for a, b in zip(self.chunk_times, self.chunk_times[1:], strict=False)]


class Recorder:
    """An `on_event` callback that fills a `StreamRecord`; create it just before the request."""

    def __init__(self) -> None:
        self.record = StreamRecord()
        self._start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def __call__(self, event: StreamEvent) -> None:
        now, record = self.elapsed(), self.record
        if event.type == "text.delta":
            record.chunks.append(str(event.data.get("delta", "")))
            record.chunk_times.append(now)
        elif event.type == "job.retrying":  # the job starts over: earlier chunks are void
            record.chunks.clear()
            record.chunk_times.clear()
        elif event.type in TERMINAL_TYPES or event.type == "session.deleted":
            record.total_seconds = now
            deleted = event.type == "session.deleted"  # deleting a session cancels its jobs
            record.status = "cancelled" if deleted else event.type.removeprefix("job.")
            record.usage = _usage(event)
            error = event.data.get("error")
            if isinstance(error, dict):
                record.error = f"{error.get('code')}: {error.get('message')}"

    def fail(self, error: BaseException) -> None:
        """The job could not be submitted or followed to its end."""
        self.record.total_seconds = self.elapsed()
        self.record.status = "error"
        self.record.error = str(error) or type(error).__name__


def _usage(event: StreamEvent) -> Usage | None:
    usage = event.data.get("usage")
    if not isinstance(usage, dict):
        return None
    fields = ("input_tokens", "output_tokens", "total_tokens")
    return Usage(**{f: int(usage.get(f) or 0) for f in fields})
