"""Server-Sent Events for a session (contract §3).

Stream entries pass through untouched: the worker encoded each event's JSON once, and
the fan-out only frames it (`id:`, `event:`, `data:`).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator

import msgspec
from fastapi.responses import Response, StreamingResponse
from redis.exceptions import RedisError

from spool.api import metrics
from spool.api.errors import ApiError
from spool.api.hub import Hub
from spool.api.state import AppState
from spool.shared import keys
from spool.shared.ids import ZERO, StreamId, before, format_stream_id, now_ms, parse_stream_id
from spool.shared.streams import job_marks
from spool_client.events import TERMINAL_TYPES, SessionGap, encoder

log = logging.getLogger(__name__)

REDIS_RETRY_S = 0.5

_TERMINAL = frozenset(t.encode() for t in TERMINAL_TYPES)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Cursor(msgspec.Struct):
    """Where a response starts (exclusive), the job it is limited to, and a gap to report."""

    after: StreamId
    job_id: bytes | None = None
    gap: bytes | None = None  # an encoded `session.gap` to send first


def parse_cursor(header: str | None, query: str | None) -> StreamId | None:
    raw = header if header is not None else query
    if raw is None or raw == "":
        return None
    sid = parse_stream_id(raw.strip())
    if sid is None:
        raise ApiError(
            400, "malformed_cursor", f"Last-Event-ID {raw!r} is not of the form <ms>-<seq>."
        )
    return sid


async def resolve_cursor(
    state: AppState, session_id: str, job_id: str | None, start: StreamId | None
) -> Cursor | None:
    """The cursor to stream from; None when the followed job already ended before `start`."""
    cursor = await _cursor(state, session_id, job_id, start)
    if cursor is not None and start is not None and start != ZERO:
        await _check_gap(state, session_id, cursor)
    return cursor


async def _check_gap(state: AppState, session_id: str, cursor: Cursor) -> None:
    """A cursor older than the first retained event: the events in between are gone."""
    first = await state.clients.streams.xrange(keys.stream_key(session_id), "-", "+", count=1)
    first_id = parse_stream_id(first[0][0]) if first else None
    if first_id is None or cursor.after >= before(first_id):
        return
    gap = SessionGap(
        requested=format_stream_id(cursor.after),
        first_available=format_stream_id(first_id),
        ts=now_ms(),
    )
    cursor.gap = b"event: session.gap\ndata: %s\n\n" % encoder.encode(gap)
    cursor.after = before(first_id)


async def _cursor(
    state: AppState, session_id: str, job_id: str | None, start: StreamId | None
) -> Cursor | None:
    if job_id is None:
        return Cursor(after=start or ZERO)
    marks = await job_marks(state.clients.streams, session_id, job_id)
    if marks.queued_id is None:
        raise ApiError(404, "job_not_found", f"No job {job_id!r} in session {session_id!r}.")
    terminal = parse_stream_id(marks.terminal_id) if marks.terminal_id else None
    if start is not None and terminal is not None and start >= terminal:
        return None
    queued = parse_stream_id(marks.queued_id)
    assert queued is not None
    return Cursor(after=start if start is not None else before(queued), job_id=job_id.encode())


def sse_response(state: AppState, session_id: str, cursor: Cursor | None) -> Response:
    if cursor is None:
        return Response(status_code=204)
    stream = frames(
        state.hub, session_id, cursor, state.settings.sse_ping_s, state.settings.sse_retry_ms
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


async def frames(
    hub: Hub, session_id: str, cursor: Cursor, ping_s: float, retry_ms: int
) -> AsyncIterator[bytes]:
    metrics.STREAMS_OPEN.inc()
    try:
        async with contextlib.aclosing(_frames(hub, session_id, cursor, ping_s, retry_ms)) as inner:
            async for chunk in inner:
                yield chunk
    finally:
        metrics.STREAMS_OPEN.dec()


async def _frames(
    hub: Hub, session_id: str, cursor: Cursor, ping_s: float, retry_ms: int
) -> AsyncGenerator[bytes]:
    yield b"retry: %d\n\n" % retry_ms
    if cursor.gap is not None:
        yield cursor.gap
    after, only = cursor.after, cursor.job_id
    async with hub.follow(session_id) as follower:
        while True:
            try:
                batch = await follower.next_batch(after, ping_s)
            except RedisError as exc:  # Redis is away: hold the connection, retry shortly
                log.warning("SSE read for %s failed: %s", session_id, exc)
                yield b": redis unavailable, retrying\n\n"
                await asyncio.sleep(REDIS_RETRY_S)
                continue
            if batch is None:
                return
            if not batch:
                yield b": ping\n\n"
                continue
            out = []
            for entry in batch:
                after = entry.sid
                if only is not None and entry.job != only:
                    continue
                out.append(entry.frame)
                if only is not None and entry.kind in _TERMINAL:
                    metrics.EVENTS_DELIVERED.inc(len(out))
                    yield b"".join(out)
                    return
            if out:
                metrics.EVENTS_DELIVERED.inc(len(out))
                yield b"".join(out)
