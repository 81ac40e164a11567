"""The SSE response class (`api/event_stream.py`) against a real uvicorn server.

It diverges from starlette's `StreamingResponse` on purpose (one task per response, one
send per batch); these tests pin what it must still do: the response head, and ending
the follow (the response, its hub follow and its stream slot) as soon as the client leaves.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import follow_job, submit

pytestmark = pytest.mark.inprocess

DEADLINE_S = 20.0


async def open_streams(http: httpx.AsyncClient) -> float:
    """The API's `spool_event_streams_open`: SSE responses open now."""
    text = (await http.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "spool_event_streams_open":
                return sample.value
    raise AssertionError("no spool_event_streams_open on /metrics")


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def test_a_client_that_leaves_ends_its_follow(
    http: httpx.AsyncClient, session_id: str
) -> None:
    await follow_job(http, await submit(http, session_id=session_id))
    await wait_for(lambda: _equals(open_streams(http), 0), "no stream open before")
    url = f"/v1/sessions/{session_id}/events"  # no job_id: the response stays open
    async with http.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert "content-length" not in response.headers
        chunks = response.aiter_bytes()  # held: a dropped iterator closes the response
        await anext(chunks)
        assert await open_streams(http) == 1
    await wait_for(lambda: _equals(open_streams(http), 0), "the follow ended with the client")


async def _equals(value: Awaitable[float], expected: float) -> bool:
    return await value == expected
