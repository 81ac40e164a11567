"""A thin blocking wrapper over `SpoolClient`, for scripts and notebooks without asyncio.

Each call runs the async client on a private event loop (`asyncio.Runner`); not for
use from inside a running event loop.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

from spool_client.aio import SpoolClient
from spool_client.result import JobResult, StreamEvent
from spool_client.views import (
    Accepted,
    ApprovalView,
    CancelView,
    JobView,
    ModelInfo,
    SessionView,
    StreamToken,
)

T = TypeVar("T")


async def _next(source: AsyncIterator[T]) -> T:
    return await anext(source)


class SyncSpoolClient:
    """Same arguments and methods as `SpoolClient`, blocking. Use as a context manager."""

    def __init__(self, base_url: str, api_key: str | None = None, **options: Any) -> None:
        self._runner = asyncio.Runner()
        self._client = SpoolClient(base_url, api_key, **options)

    def __enter__(self) -> "SyncSpoolClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()

    def submit(self, input: str | list[dict[str, str]] | None = None, **fields: Any) -> Accepted:
        return self._runner.run(self._client.submit(input, **fields))

    def get_job(self, job_id: str) -> JobView:
        return self._runner.run(self._client.get_job(job_id))

    job = get_job  # the earlier name

    def cancel(self, job_id: str) -> CancelView:
        return self._runner.run(self._client.cancel(job_id))

    def get_session(self, session_id: str) -> SessionView:
        return self._runner.run(self._client.get_session(session_id))

    session = get_session  # the earlier name

    def stream_token(self, session_id: str) -> StreamToken:
        return self._runner.run(self._client.stream_token(session_id))

    def approve(
        self,
        job_id: str,
        call_id: str,
        approved: bool = True,
        reason: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> ApprovalView:
        return self._runner.run(self._client.approve(job_id, call_id, approved, reason, arguments))

    def models(self) -> list[ModelInfo]:
        return self._runner.run(self._client.models())

    def delete_session(self, session_id: str) -> None:
        self._runner.run(self._client.delete_session(session_id))

    def run(self, input: str | list[dict[str, str]] | None = None, **options: Any) -> JobResult:
        """`SpoolClient.run`: callbacks (`on_text`, ...) and `raise_on_failure` included."""
        return self._runner.run(self._client.run(input, **options))

    def collect(self, session_id: str, job_id: str, **options: Any) -> JobResult:
        """`SpoolClient.collect`: callbacks (`on_text`, ...) and `raise_on_failure` included."""
        return self._runner.run(self._client.collect(session_id, job_id, **options))

    def events(
        self, session_id: str, job_id: str | None = None, last_event_id: str | None = None
    ) -> Iterator[StreamEvent]:
        source = self._client.events(session_id, job_id, last_event_id)
        try:
            while True:
                try:
                    yield self._runner.run(_next(source))
                except StopAsyncIteration:
                    return
        finally:
            self._runner.run(source.aclose())
