"""Writing an SSE body straight to uvicorn's transport, past the ASGI `send` layers.

Why: every ASGI `send` of a frame crosses starlette's two middleware wrappers
(`ServerErrorMiddleware._send`, `ExceptionMiddleware`'s sender) and uvicorn's
`RequestResponseCycle.send` before its one `transport.write`: ~50 µs of the API's CPU
per frame at 10,000 followers (py-spy, docs/benchmarks-history.md). An SSE body is a long run of
chunks to one connection whose head was already sent through ASGI, so after the head
this module writes each chunk as an HTTP/1.1 chunked-encoding piece to the connection's
transport itself. The head and the final (empty) chunk still go through `send`, so
uvicorn's access log, default headers, keep-alive and response bookkeeping are its own.

Reliance on uvicorn internals (pinned by tests/test_transport_writer.py, which fails if
they change): the `send` callable uvicorn hands to the app is the bound method
`RequestResponseCycle.send` of `uvicorn.protocols.http.httptools_impl`, whose cycle
holds `transport` (an `asyncio.Transport`), `flow` (uvicorn's `FlowControl`:
`write_paused`, `drain()`), `disconnected`, `response_started`, `response_complete` and
`chunked_encoding` (True once a head without Content-Length was sent). The outermost
app (`api.outermost.Outermost`) records that raw `send` in the scope under `RAW_SEND`, since
the `send` a route receives is starlette's wrapper. Anything else (the h11 protocol,
another server, a HEAD request, a head with a length) gets `None` from `transport_writer`: the
caller then sends through ASGI as before.

Back-pressure is uvicorn's own: a write waits while the transport is above its high
water mark (`flow.write_paused`, the loop's default 64 KiB) exactly as `send` would,
so a reader that does not read holds at most one chunk beyond that in the server.
"""

import asyncio
from typing import Any

from starlette.types import Scope, Send

RAW_SEND = "spool.raw_send"  # scope key: the server's own `send`

try:  # uvicorn is the server we know; without it there is nothing to bypass
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
except ImportError:  # pragma: no cover - httptools not installed
    RequestResponseCycle = None  # type: ignore[assignment,misc]


class TransportWriter:
    """Chunks of a started, chunked response, written to the connection's transport."""

    __slots__ = ("_cycle", "_flow", "_transport")

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle
        self._flow = cycle.flow
        self._transport: asyncio.Transport = cycle.transport

    @property
    def disconnected(self) -> bool:
        return bool(self._cycle.disconnected)

    @property
    def paused(self) -> bool:
        """The transport holds more than its high water mark: the client reads slowly."""
        return bool(self._flow.write_paused) and not self._cycle.disconnected

    async def drain(self) -> None:
        """Until the transport takes writes again (or the client left)."""
        while self.paused:
            await self._flow.drain()

    def offer(self, chunk: bytes) -> bool:
        """Write one non-empty chunk now (as uvicorn's `send` would), unless the transport
        is above its high water mark (a slow reader) or the client left: then write
        nothing and answer False."""
        if self._cycle.disconnected or self._flow.write_paused:
            return False
        self._transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        return True


def transport_writer(scope: Scope) -> TransportWriter | None:
    """The writer for this response, whose head `send` already sent; None when the
    server is not uvicorn's httptools protocol in the state described above."""
    raw: Send | None = scope.get(RAW_SEND)
    cycle = getattr(raw, "__self__", None)
    if RequestResponseCycle is None or type(cycle) is not RequestResponseCycle:
        return None
    if scope.get("method") == "HEAD" or not _writable(cycle):
        return None
    return TransportWriter(cycle)


def _writable(cycle: Any) -> bool:
    return (
        cycle.response_started is True
        and cycle.response_complete is False
        and cycle.chunked_encoding is True
        and callable(getattr(cycle.transport, "write", None))
        and hasattr(cycle.flow, "write_paused")
        and hasattr(cycle.flow, "drain")
    )
