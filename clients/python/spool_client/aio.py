"""The async client over Spool's HTTP API (contract §2-§4).

`events()` follows a session over SSE and resumes by itself after a dropped
connection: it reconnects with `Last-Event-ID` after a backoff with jitter (bounded
by `max_retries` consecutive failures), drops any event at or before the last id it
yielded, so no event is yielded twice, and passes `session.gap` on to the caller.
"""

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import msgspec
from httpx_sse import aconnect_sse

from spool_client.errors import ClientError, StreamInterrupted, StreamTimeout
from spool_client.events import TERMINAL_TYPES
from spool_client.follow import OnComplete, OnEvent, OnText, collect_events
from spool_client.ids import StreamId, parse_stream_id
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

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class _Retry(Exception):
    """A connection attempt to retry (a retryable status, or the server ended early)."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class _Progress:
    """Where a resuming stream is: the last id yielded, and whether the job is over."""

    def __init__(self, last_event_id: str | None) -> None:
        self.last_id = last_event_id
        self.last_key: StreamId | None = parse_stream_id(last_event_id or "")
        self.received = 0
        self.done = False
        self.retry_s: float | None = None

    def is_new(self, event_id: str | None) -> bool:
        key = parse_stream_id(event_id or "")
        if key is None:
            return True
        if self.last_key is not None and key <= self.last_key:
            return False
        self.last_id, self.last_key = event_id, key
        return True


def raise_for(response: httpx.Response, body: bytes) -> None:
    """Raise `ClientError` with the service's `{"error": {code, message}}`, if it sent one."""
    try:
        err = msgspec.json.decode(body)["error"]
        code, message = str(err["code"]), str(err["message"])
    except (msgspec.DecodeError, KeyError, TypeError):
        code, message = "http_error", body.decode(errors="replace")[:500]
    raise ClientError(response.status_code, code, message)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.replace(".", "", 1).isdigit() else None


class SpoolClient:
    """Async client. Use as `async with SpoolClient(url, api_key) as client: ...`.

    `max_retries`: consecutive failed reconnects before `StreamInterrupted`.
    `first_event_timeout` / `idle_timeout`: seconds to wait for the first event / between
    events (None = forever) before `StreamTimeout`. `stall_timeout`: seconds without a
    byte (the service pings every 15 s) before a connection is taken as dead and resumed.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        max_retries: int = 8,
        backoff_base: float = 0.25,
        backoff_max: float = 5.0,
        first_event_timeout: float | None = None,
        idle_timeout: float | None = None,
        stall_timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(10.0, read=stall_timeout),
            transport=transport,
        )
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.first_event_timeout = first_event_timeout
        self.idle_timeout = idle_timeout

    async def __aenter__(self) -> "SpoolClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _json(self, method: str, url: str, body: Any = None) -> Any:
        response = await self._http.request(method, url, json=body)
        if response.status_code >= 400:
            raise_for(response, response.content)
        return response.json()

    async def submit(
        self,
        input: str | list[dict[str, str]] | None = None,
        *,
        session_id: str | None = None,
        model: str | None = None,
        parameters: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Accepted:
        """Enqueue a job (`POST /v1/jobs`); `fields` are the contract's other body fields
        (`agent`, `system`, `tools`, `max_steps`, `template`, `variables`, `chain`, ...).
        `input` may be left out for a job given by `template` or `chain`."""
        given = {"input": input, "session_id": session_id, "model": model, "parameters": parameters}
        body = {k: v for k, v in {**given, **fields}.items() if v is not None}
        return msgspec.convert(await self._json("POST", "/v1/jobs", body), Accepted)

    async def get_job(self, job_id: str) -> JobView:
        """`GET /v1/jobs/{job_id}`: the job's record."""
        return msgspec.convert(await self._json("GET", f"/v1/jobs/{job_id}"), JobView)

    job = get_job  # the earlier name

    async def cancel(self, job_id: str) -> CancelView:
        """`POST /v1/jobs/{job_id}/cancel`: `status` is `cancelling`, or how the job ended."""
        return msgspec.convert(await self._json("POST", f"/v1/jobs/{job_id}/cancel"), CancelView)

    async def get_session(self, session_id: str) -> SessionView:
        """`GET /v1/sessions/{session_id}`: its jobs and whether one is running."""
        answer = await self._json("GET", f"/v1/sessions/{session_id}")
        return msgspec.convert(answer, SessionView)

    session = get_session  # the earlier name

    async def delete_session(self, session_id: str) -> None:
        """`DELETE /v1/sessions/{session_id}`: cancels its jobs, removes its stream and history."""
        response = await self._http.delete(f"/v1/sessions/{session_id}")
        if response.status_code >= 400:
            raise_for(response, response.content)

    async def stream_token(self, session_id: str) -> StreamToken:
        """A short-lived token for `?token=` on the session's events URL (for browsers)."""
        answer = await self._json("POST", f"/v1/sessions/{session_id}/token")
        return msgspec.convert(answer, StreamToken)

    async def approve(
        self,
        job_id: str,
        call_id: str,
        approved: bool = True,
        reason: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> ApprovalView:
        """Decide a pending tool approval (`POST /v1/jobs/{job_id}/approvals/{call_id}`).

        `arguments` replaces the call's arguments (an edited call). Unknown call: a 404
        `ClientError`; already decided: 409.
        """
        body: dict[str, Any] = {"approved": approved}
        if reason is not None:
            body["reason"] = reason
        if arguments is not None:
            body["arguments"] = arguments
        url = f"/v1/jobs/{job_id}/approvals/{call_id}"
        return msgspec.convert(await self._json("POST", url, body), ApprovalView)

    async def models(self) -> list[ModelInfo]:
        """`GET /v1/models`: the models this deployment can run, with their capabilities."""
        answer = await self._json("GET", "/v1/models")
        if isinstance(answer, dict):  # `{"models": [...]}` (or OpenAI's `{"data": [...]}`)
            answer = answer.get("models", answer.get("data", []))
        return msgspec.convert(answer, list[ModelInfo])

    async def run(
        self,
        input: str | list[dict[str, str]] | None = None,
        *,
        on_event: OnEvent | None = None,
        on_text: OnText | None = None,
        on_thinking: OnText | None = None,
        on_complete: OnComplete | None = None,
        raise_on_failure: bool = False,
        **fields: Any,
    ) -> JobResult:
        """Submit a job and collect its result (callbacks as in `collect()`)."""
        accepted = await self.submit(input, **fields)
        return await self.collect(
            accepted.session_id,
            accepted.job_id,
            on_event=on_event,
            on_text=on_text,
            on_thinking=on_thinking,
            on_complete=on_complete,
            raise_on_failure=raise_on_failure,
        )

    async def collect(
        self,
        session_id: str,
        job_id: str,
        *,
        last_event_id: str | None = None,
        on_event: OnEvent | None = None,
        on_text: OnText | None = None,
        on_thinking: OnText | None = None,
        on_complete: OnComplete | None = None,
        raise_on_failure: bool = False,
    ) -> JobResult:
        """Follow one job to its end and fold its events into a `JobResult`.

        `on_event(event)` for every event, `on_text(delta)` / `on_thinking(delta)` per
        delta, `on_complete(result)` once when the job ends (any of completed, failed,
        cancelled); each may be a coroutine function. With `raise_on_failure`, a failed
        or cancelled job raises `JobFailedError` / `JobCancelledError` carrying the
        partial result. On `StreamInterrupted` the exception's `partial` holds what was
        collected.
        """
        events = self.events(session_id, job_id, last_event_id)
        async with contextlib.aclosing(events):  # closed here, even if a callback raises
            return await collect_events(
                events,
                session_id=session_id,
                job_id=job_id,
                on_event=on_event,
                on_text=on_text,
                on_thinking=on_thinking,
                on_complete=on_complete,
                raise_on_failure=raise_on_failure,
            )

    async def events(
        self,
        session_id: str,
        job_id: str | None = None,
        last_event_id: str | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield the session's events after `last_event_id`, resuming after drops.

        With `job_id`, only that job's events, ending after its terminal event; without
        it, the session's events for as long as the caller reads.
        """
        progress = _Progress(last_event_id)
        source = self._resuming(session_id, job_id, progress)
        async with contextlib.aclosing(source):
            wait = self.first_event_timeout
            while True:
                try:
                    async with asyncio.timeout(wait):
                        event = await anext(source)
                except StopAsyncIteration:
                    return
                except TimeoutError as exc:
                    which = "first event" if progress.received == 0 else "next event"
                    raise StreamTimeout(progress.last_id, f"no {which} in {wait}s") from exc
                wait = self.idle_timeout
                yield event

    async def _resuming(
        self, session_id: str, job_id: str | None, progress: _Progress
    ) -> AsyncGenerator[StreamEvent, None]:
        failures = 0
        while True:
            after: float | None = None
            try:
                async for event in self._connection(session_id, job_id, progress):
                    failures = 0
                    yield event
                if progress.done:
                    return
                cause: object = "the service ended the stream early"
            except (httpx.TransportError, _Retry) as exc:
                cause, after = exc, getattr(exc, "after", None)
            except ClientError as exc:
                if progress.received == 0:
                    raise
                raise StreamInterrupted(progress.last_id, exc) from exc
            failures += 1
            if failures > self.max_retries:
                raise StreamInterrupted(progress.last_id, cause)
            await asyncio.sleep(after if after is not None else self._backoff(failures, progress))

    def _backoff(self, failures: int, progress: _Progress) -> float:
        base = progress.retry_s if progress.retry_s is not None else self.backoff_base
        return min(self.backoff_max, base * 2.0 ** (failures - 1)) * random.uniform(0.5, 1.0)

    async def _connection(
        self, session_id: str, job_id: str | None, progress: _Progress
    ) -> AsyncGenerator[StreamEvent, None]:
        """One connection: yield each new event; sets `progress.done` at the job's end."""
        params = {"job_id": job_id} if job_id else {}
        headers = {"Last-Event-ID": progress.last_id} if progress.last_id else {}
        url = f"/v1/sessions/{session_id}/events"
        async with aconnect_sse(self._http, "GET", url, params=params, headers=headers) as src:
            status = src.response.status_code
            if status == 204:  # the followed job ended at or before our cursor
                progress.done = True
                return
            if status in RETRYABLE_STATUSES:
                await src.response.aread()
                raise _Retry(f"the service answered {status}", _retry_after(src.response))
            if status >= 400:
                raise_for(src.response, await src.response.aread())
            async for sse in src.aiter_sse():
                if sse.retry is not None:
                    progress.retry_s = sse.retry / 1000
                if not sse.data or not progress.is_new(sse.id or None):
                    continue
                progress.received += 1
                event = StreamEvent.parse(sse.id or None, sse.event, sse.data)
                progress.done = (job_id is not None and event.type in TERMINAL_TYPES) or (
                    event.type == "session.deleted"  # the service ends the response after it
                )
                yield event
                if progress.done:
                    return
