"""Server-Sent Events for a session (contract §3).

Stream entries pass through untouched: the worker encoded each event's JSON once, and
the fan-out only frames it (`id:`, `event:`, `data:`).

Bounded readers (contract §4): frames are written in pieces of at most `WRITE_BYTES`, so
a client that does not read holds at most about one batch (`hub.MAX_BATCH_BYTES`) plus
one piece in the server; a write that makes no progress for `SPOOL_SSE_SEND_TIMEOUT_S`
disconnects the client (it resumes with `Last-Event-ID`); and each tenant may hold at most
`SPOOL_TENANT_MAX_STREAMS` open streams per API process.
"""

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator

import msgspec
from fastapi.responses import Response, StreamingResponse
from redis.exceptions import RedisError
from starlette.types import Message, Receive, Scope, Send

from spool.api import metrics
from spool.api.errors import ApiError
from spool.api.hub import Follower, Hub, SessionGone
from spool.api.state import AppState, StreamCounts
from spool.shared.ids import ZERO, StreamId, before, format_stream_id, now_ms, parse_stream_id
from spool.shared.keys import SessionRef
from spool.shared.streams import job_marks
from spool_client.events import TERMINAL_TYPES, SessionDeleted, SessionGap, encoder

log = logging.getLogger(__name__)

REDIS_RETRY_S = 0.5
WRITE_BYTES = 64 << 10  # the largest piece handed to the server at once
STREAMS_RETRY_S = 5

# Set (in the request's own task) when a stalled client was cut off on purpose, so that
# `QuietStalledCutoffs` drops uvicorn's "returned without completing response" error.
stalled_cutoff: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "stalled_cutoff", default=False
)

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
    state: AppState, session: SessionRef, job_id: str | None, start: StreamId | None
) -> Cursor | None:
    """The cursor to stream from; None when the followed job already ended before `start`."""
    cursor = await _cursor(state, session, job_id, start)
    if cursor is not None and start is not None and start != ZERO:
        await _check_gap(state, session, cursor)
    return cursor


async def _check_gap(state: AppState, session: SessionRef, cursor: Cursor) -> None:
    """A cursor older than the first retained event: the events in between are gone."""
    first = await state.clients.streams.xrange(state.keys.stream(session), "-", "+", count=1)
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
    state: AppState, session: SessionRef, job_id: str | None, start: StreamId | None
) -> Cursor | None:
    if job_id is None:
        return Cursor(after=start or ZERO)
    marks = await job_marks(state.clients.streams, state.keys, session, job_id)
    if marks.queued_id is None:
        raise ApiError(
            404, "job_not_found", f"No job {job_id!r} in session {session.session_id!r}."
        )
    terminal = parse_stream_id(marks.terminal_id) if marks.terminal_id else None
    if start is not None and terminal is not None and start >= terminal:
        return None
    queued = parse_stream_id(marks.queued_id)
    assert queued is not None
    return Cursor(after=start if start is not None else before(queued), job_id=job_id.encode())


class SseResponse(StreamingResponse):
    """A streaming response whose every write must make progress within `send_timeout_s`
    (else the client is disconnected), holding one of its tenant's stream slots."""

    media_type = "text/event-stream"

    def __init__(
        self, body: AsyncIterator[bytes], send_timeout_s: float, slot: StreamCounts, tenant: str
    ) -> None:
        super().__init__(body, headers=SSE_HEADERS)
        self.send_timeout_s = send_timeout_s
        self._slot = slot
        self._tenant = tenant

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        timeout = self.send_timeout_s

        async def timed_send(message: Message) -> None:
            async with asyncio.timeout(timeout):  # uvicorn waits here while the client stalls
                await send(message)

        try:
            await super().__call__(scope, receive, timed_send)
        except TimeoutError:
            log.info("disconnecting an SSE client that read nothing for %gs", timeout)
            stalled_cutoff.set(True)  # uvicorn closes the connection as we return
        finally:
            self._slot.release(self._tenant)


class QuietStalledCutoffs(logging.Filter):
    """Drop uvicorn's error line for a response Spool cut off on purpose (a stalled client)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (stalled_cutoff.get() and "without completing response" in record.getMessage())


def sse_response(state: AppState, session: SessionRef, cursor: Cursor | None) -> Response:
    if cursor is None:
        return Response(status_code=204)
    settings = state.settings
    if not state.streams.acquire(session.tenant, settings.tenant_max_streams):
        raise ApiError(
            429,
            "too_many_streams",
            f"This tenant has {settings.tenant_max_streams} event streams open on this "
            "server (SPOOL_TENANT_MAX_STREAMS); close one or retry later.",
            {"Retry-After": str(STREAMS_RETRY_S)},
        )
    stream = frames(state.hub, session, cursor, settings.sse_ping_s, settings.sse_retry_ms)
    return SseResponse(stream, settings.sse_send_timeout_s, state.streams, session.tenant)


def pieces(data: bytes) -> list[bytes]:
    """`data` cut into writes of at most `WRITE_BYTES`."""
    if len(data) <= WRITE_BYTES:
        return [data]
    view = memoryview(data)
    return [bytes(view[i : i + WRITE_BYTES]) for i in range(0, len(data), WRITE_BYTES)]


async def frames(
    hub: Hub, session: SessionRef, cursor: Cursor, ping_s: float, retry_ms: int
) -> AsyncIterator[bytes]:
    yield b"retry: %d\n\n" % retry_ms
    if cursor.gap is not None:
        yield cursor.gap
    async with hub.follow(session) as follower:
        try:
            async for chunk in _follow(follower, session, cursor, ping_s):
                for piece in pieces(chunk):
                    yield piece
        except SessionGone:
            deleted = SessionDeleted(ts=now_ms())
            yield b"event: session.deleted\ndata: %s\n\n" % encoder.encode(deleted)


async def _follow(
    follower: Follower, session: SessionRef, cursor: Cursor, ping_s: float
) -> AsyncIterator[bytes]:
    after, only = cursor.after, cursor.job_id
    while True:
        try:
            batch = await follower.next_batch(after, ping_s)
        except RedisError as exc:  # Redis is away: hold the connection, retry shortly
            log.warning("SSE read for %s failed: %s", session, exc)
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
