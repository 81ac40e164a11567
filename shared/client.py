"""A small async client for Spool's HTTP API, used by `spool submit` and `spool tail`.

`events()` follows a session over SSE and resumes by itself after a dropped connection
(backoff with jitter, bounded), sending the last seen id, so no event is yielded twice.
"""

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
from httpx_sse import aconnect_sse

from shared.errors import SpoolError
from shared.events import TERMINAL_TYPES


class ClientError(SpoolError):
    """The service answered with an error (`status`, `code`, `message`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class StreamInterrupted(SpoolError):
    """The stream could not be resumed within the retry budget."""

    def __init__(self, last_event_id: str | None, cause: BaseException) -> None:
        super().__init__(f"stream interrupted after {last_event_id!r}: {cause}")
        self.last_event_id = last_event_id


class StreamEvent(msgspec.Struct):
    id: str | None
    type: str
    data: dict[str, Any]


def _raise_for(response: httpx.Response, body: bytes) -> None:
    try:
        err = json.loads(body)["error"]
        raise ClientError(response.status_code, err["code"], err["message"])
    except (ValueError, KeyError, TypeError):
        raise ClientError(
            response.status_code, "http_error", body.decode(errors="replace")
        ) from None


class SpoolClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        max_retries: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(10.0, read=None),
            transport=transport,
        )
        self.max_retries = max_retries

    async def __aenter__(self) -> "SpoolClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit(self, input: str | list[dict[str, str]], **fields: Any) -> dict[str, Any]:
        body = {"input": input, **{k: v for k, v in fields.items() if v is not None}}
        response = await self._http.post("/v1/jobs", json=body)
        if response.status_code >= 400:
            _raise_for(response, response.content)
        result: dict[str, Any] = response.json()
        return result

    async def events(
        self, session_id: str, job_id: str | None = None, last_event_id: str | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Yield the session's events (only `job_id`'s, ending at its terminal event, if given)."""
        cursor, failures = last_event_id, 0
        params = {"job_id": job_id} if job_id else {}
        url = f"/v1/sessions/{session_id}/events"
        while True:
            headers = {"Last-Event-ID": cursor} if cursor else {}
            try:
                async with aconnect_sse(
                    self._http, "GET", url, params=params, headers=headers
                ) as src:
                    response = src.response
                    if response.status_code == 204:
                        return
                    if response.status_code >= 400:
                        _raise_for(response, await response.aread())
                    async for sse in src.aiter_sse():
                        failures = 0
                        cursor = sse.id or cursor
                        event = StreamEvent(
                            id=sse.id or None, type=sse.event, data=json.loads(sse.data)
                        )
                        yield event
                        if job_id is not None and event.type in TERMINAL_TYPES:
                            return
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.max_retries:
                    raise StreamInterrupted(cursor, exc) from exc
                await asyncio.sleep(min(5.0, 0.1 * 2**failures) * random.uniform(0.5, 1.0))
