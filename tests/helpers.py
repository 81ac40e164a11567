"""Small test helpers over the public HTTP API (and one over Redis's own counters)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from redis.asyncio import Redis

from tests.sse import Frame, frames

TERMINAL = {"job.completed", "job.failed", "job.cancelled"}


async def submit(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("input", "hello")
    response = await http.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


async def read_stream(
    http: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    max_events: int | None = None,
) -> tuple[int, list[Frame]]:
    """Read events (frames with data) until the server ends the response or `max_events`."""
    events: list[Frame] = []
    async with http.stream("GET", url, headers=headers, params=params) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, events
        assert response.headers["content-type"].startswith("text/event-stream")
        async for frame in frames(response):
            if frame.data is not None:
                events.append(frame)
                if max_events is not None and len(events) >= max_events:
                    break
    return 200, events


async def follow_job(http: httpx.AsyncClient, accepted: dict[str, Any]) -> list[Frame]:
    status, events = await read_stream(http, accepted["events_url"])
    assert status == 200
    assert events, "no events"
    assert events[-1].event in TERMINAL, [e.event for e in events]
    return events


async def until(condition: Callable[[], Awaitable[bool]], what: str, within_s: float = 20) -> None:
    """Poll an async condition until it holds; fail naming `what` after `within_s`."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def script_loads(redis: Redis) -> int:
    """`SCRIPT LOAD`s this Redis has run (`cmdstat_script|load`; Redis 6: all of `SCRIPT`)."""
    stats: dict[str, dict[str, int]] = await redis.info("commandstats")  # type: ignore[assignment]
    names = ("cmdstat_script|load", "cmdstat_script")
    return sum(v["calls"] for k, v in stats.items() if k in names)
