"""The SSE response class (`api/event_stream.py`) against a real uvicorn server.

It diverges from starlette's `StreamingResponse` on purpose (one task per response, one
send per batch); these tests pin what it must still do: the response head, and ending
the follow (the hub drops the session's subscription) as soon as the client leaves.
"""

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
import redis

from spool.api.auth import OPEN_TENANT
from spool.shared.keys import Keys, SessionRef
from tests.helpers import follow_job, submit

pytestmark = pytest.mark.inprocess

DEADLINE_S = 20.0


def subscribers(redis_url: str, session_id: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        counts: list[tuple[bytes, int]] = client.pubsub_numsub(
            Keys().notify(SessionRef(OPEN_TENANT, session_id))
        )  # type: ignore[assignment]
        return int(counts[0][1])
    finally:
        client.close()


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def test_a_client_that_leaves_ends_its_follow(
    http: httpx.AsyncClient, session_id: str, redis_url: str
) -> None:
    await follow_job(http, await submit(http, session_id=session_id))
    url = f"/v1/sessions/{session_id}/events"  # no job_id: the response stays open
    async with http.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert "content-length" not in response.headers
        await anext(response.aiter_bytes())
        await wait_for(
            lambda: subscribers(redis_url, session_id) == 1, "the hub follows the session"
        )
    await wait_for(
        lambda: subscribers(redis_url, session_id) == 0, "the follow ended with the client"
    )
