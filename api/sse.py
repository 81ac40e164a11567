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
from fastapi.responses import Response
from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send

from spool.api import metrics, sse_encoder
from spool.api.errors import ApiError
from spool.api.event_stream import Body, EventStreamResponse
from spool.api.formats import Format
from spool.api.formats.view import View
from spool.api.hub import TERMINAL, DirectWriter, Entry, Follower, Hub, SessionGone, Start
from spool.api.state import AppState, StreamCounts
from spool.api.transport_writer import TransportWriter
from spool.shared.ids import ZERO, StreamId, before, format_stream_id, now_ms, parse_stream_id
from spool.shared.keys import SessionRef
from spool.shared.streams import job_marks
from spool_client.events import SessionDeleted, SessionGap, encoder

log = logging.getLogger(__name__)

REDIS_RETRY_S = 0.5
WRITE_BYTES = 64 << 10  # the largest piece handed to the server at once
STREAMS_RETRY_S = 5

# Set (in the request's own task) when a stalled client was cut off on purpose, so that
# `api.logs.QuietStalledCutoffs` drops uvicorn's "returned without completing response" error.
stalled_cutoff: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "stalled_cutoff", default=False
)

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
    cursor.gap = sse_encoder.encode(encoder.encode(gap), event=b"session.gap")
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


class SseResponse(EventStreamResponse):
    """An event stream whose every write must make progress within `send_timeout_s` (else
    the client is disconnected), holding one of its tenant's stream slots."""

    def __init__(
        self,
        body: Body,
        send_timeout_s: float,
        slot: StreamCounts,
        tenant: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(body, headers or SSE_HEADERS, send_timeout_s)
        self._slot = slot
        self._tenant = tenant

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except TimeoutError:
            log.info("disconnecting an SSE client that read nothing for %gs", self.send_timeout_s)
            stalled_cutoff.set(True)  # uvicorn closes the connection as we return
        finally:
            self._slot.release(self._tenant)


def sse_response(
    state: AppState,
    session: SessionRef,
    cursor: Cursor | None,
    fmt: Format | None = None,
    headers: dict[str, str] | None = None,
    start: Start | None = None,
) -> Response:
    """The session's events from `cursor`, in Spool's own format or in `fmt` (§10);
    `start`: the stream as the submission just left it (`Hub.follow`)."""
    headers = {**SSE_HEADERS, **(fmt.headers if fmt else {}), **(headers or {})}
    if cursor is None:
        return Response(status_code=204, headers=headers)
    settings = state.settings
    if not state.streams.acquire(session.tenant, settings.tenant_max_streams):
        raise ApiError(
            429,
            "too_many_streams",
            f"This tenant has {settings.tenant_max_streams} event streams open on this "
            "server (SPOOL_TENANT_MAX_STREAMS); close one or retry later.",
            {"Retry-After": str(STREAMS_RETRY_S)},
        )
    view = View(fmt, state.clients.streams, state.keys, session) if fmt is not None else None
    ping_s, retry_ms = settings.sse_ping_s, settings.sse_retry_ms

    # quoted: a closure made per request would evaluate its annotations each time
    def body(writer: "TransportWriter | None") -> "AsyncIterator[bytes]":
        return frames(state.hub, session, cursor, ping_s, retry_ms, view, writer, start)

    return SseResponse(body, settings.sse_send_timeout_s, state.streams, session.tenant, headers)


def pieces(data: bytes) -> list[bytes]:
    """`data` cut into writes of at most `WRITE_BYTES`."""
    if len(data) <= WRITE_BYTES:
        return [data]
    view = memoryview(data)
    return [bytes(view[i : i + WRITE_BYTES]) for i in range(0, len(data), WRITE_BYTES)]


async def frames(
    hub: Hub,
    session: SessionRef,
    cursor: Cursor,
    ping_s: float,
    retry_ms: int,
    view: View | None = None,
    writer: DirectWriter | None = None,
    start: Start | None = None,
) -> AsyncIterator[bytes]:
    """Spool's frames are the hub's, built once per entry for every follower; a `view`
    (another format) renders each entry for this response alone, and sends no `retry:`,
    gap, deletion or ping message: those formats' readers take every message for a chunk.
    With a `writer` (the connection takes writes directly), a follower of every entry in
    Spool's format lets the hub write to it while it is caught up (`Follower.attach`)."""
    if view is None:
        yield sse_encoder.retry(retry_ms)
        if cursor.gap is not None:
            yield cursor.gap
    async with hub.follow(session, start) as follower:
        try:
            direct = writer if view is None else None
            async for chunk in _follow(follower, session, cursor, ping_s, view, direct):
                for piece in pieces(chunk):
                    yield piece
                del chunk, piece  # not held while waiting for the next
        except SessionGone:
            if view is None:
                deleted = SessionDeleted(ts=now_ms())
                yield sse_encoder.encode(encoder.encode(deleted), event=b"session.deleted")


async def _follow(
    follower: Follower,
    session: SessionRef,
    cursor: Cursor,
    ping_s: float,
    view: View | None = None,
    direct: DirectWriter | None = None,
) -> AsyncIterator[bytes]:
    after, only = cursor.after, cursor.job_id
    comment = sse_encoder.comment if view is None else sse_encoder.comment_line
    while True:
        if direct is not None and not direct.paused and follower.caught_up(after):
            after = await follower.attach(direct, after, ping_s, only)
        try:
            batch = await follower.next_batch(after, ping_s)
            if view is not None and batch:
                await view.prepare(e for e in batch if only is None or e.job == only)
        except RedisError as exc:  # Redis is away: hold the connection, retry shortly
            log.warning("SSE read for %s failed: %s", session, exc)
            yield comment(b"redis unavailable, retrying")
            await asyncio.sleep(REDIS_RETRY_S)
            continue
        if batch is None:
            return
        if not batch:
            yield comment(b"ping")
            continue
        chunk, after, ended = _render(batch, after, only, view)
        batch = None  # not held while waiting: a follower keeps only its cursor
        if chunk:
            yield chunk
            del chunk
        if ended:
            return


def _render(
    batch: list[Entry], after: StreamId, only: bytes | None, view: View | None
) -> tuple[bytes, StreamId, bool]:
    """A batch as one chunk of frames, the cursor after it, and whether the followed job
    ended in it (the response then ends)."""
    out = []
    for entry in batch:
        after = entry.sid
        if only is not None and entry.job != only:
            continue
        out.append(entry.frame if view is None else view.render(entry))
        if only is not None and entry.kind in TERMINAL:
            metrics.EVENTS_DELIVERED.inc(len(out))
            return b"".join(out), after, True
    metrics.EVENTS_DELIVERED.inc(len(out))
    return b"".join(out), after, False
