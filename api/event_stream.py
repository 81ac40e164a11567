"""`EventStreamResponse`: the SSE response, one write per batch of frames.

Intentional divergence from starlette's `StreamingResponse` (do not "fix" without
reading this). Under uvicorn (ASGI spec 2.3) `StreamingResponse` runs every response as
an anyio task group of two tasks (the body, and a listener for `http.disconnect`) with
their cancel scopes; at 10,000 followers that is 20,000 tasks and their scopes, a large
share of the API's memory per client and of its CPU per frame. Here the body is sent
from the request's own task, and the disconnect listener is one plain asyncio task whose
completion cancels the sender. Each chunk the body yields (the hub hands over every entry
a wake-up found, joined) is one write per client per wake-up: straight to the
connection's transport when uvicorn's httptools protocol serves it
(`api.transport_writer`; the body is then opened with that writer, so that the hub can
write to a caught-up follower itself), else one ASGI `send`.

A write or send that makes no progress for `send_timeout_s` (the client stopped reading
and the socket's buffers are full) raises `TimeoutError` to the caller. Through `send`,
the deadline is one `asyncio.timeout` for the whole response, moved before and cleared
after every send; a direct write takes a timeout only when it has to wait for the
socket to drain.

If the upstream API changes (`Task.uncancel`, the ASGI message shapes), the tests in
tests/test_event_stream.py fail.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from spool.api.transport_writer import TransportWriter, transport_writer


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


Body = Callable[[TransportWriter | None], AsyncIterator[bytes]]
"""The response body, opened once the head is sent: given the connection's writer when
the frames may be written to it directly (`api.transport_writer`), else None."""


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, body: Body, headers: Mapping[str, str], send_timeout_s: float) -> None:
        # not Response.__init__: that would add a Content-Length for an empty body
        self.open_body: Body | None = body
        self.status_code = 200
        self.background = None
        self.send_timeout_s = send_timeout_s
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        writer = transport_writer(scope)
        assert self.open_body is not None, "an event stream response is sent once"
        # not kept once opened: the body's closure and its cells (the caller's arguments)
        # would live as long as the stream, beside the generator that holds them anyway
        body, self.open_body = self.open_body(writer), None
        sender = asyncio.current_task()
        assert sender is not None
        sending = True

        def gone(_: "asyncio.Task[None]") -> None:
            if sending:
                sender.cancel()  # the client left: stop waiting for events

        listener = asyncio.ensure_future(_until_disconnect(receive))
        listener.add_done_callback(gone)
        try:
            if writer is not None:
                await self._write_all(body, writer, send)
            else:
                await self._send_all(body, send)
        except asyncio.CancelledError:
            if not (listener.done() and not listener.cancelled()):
                raise  # cancelled from outside (the server stops): not ours to swallow
            sender.uncancel()
        finally:
            sending = False
            listener.cancel()
            with contextlib.suppress(Exception):
                await body.aclose()  # type: ignore[attr-defined]

    async def _send_all(self, body: AsyncIterator[bytes], send: Send) -> None:
        loop, timeout = asyncio.get_running_loop(), self.send_timeout_s
        async with asyncio.timeout(None) as deadline:
            async for chunk in body:
                deadline.reschedule(loop.time() + timeout)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                deadline.reschedule(None)
                del chunk  # not held while the body waits for the next
            deadline.reschedule(loop.time() + timeout)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _write_all(
        self, body: AsyncIterator[bytes], writer: TransportWriter, send: Send
    ) -> None:
        """The body straight to the transport: a write waits only while the client's
        socket is full, and at most `send_timeout_s`."""
        timeout = self.send_timeout_s
        async for chunk in body:
            if writer.paused:
                async with asyncio.timeout(timeout):
                    await writer.drain()
            if not writer.offer(chunk):  # drained, so only a client that left refuses
                return
            del chunk  # not held while the body waits for the next
        if writer.paused:
            async with asyncio.timeout(timeout):
                await writer.drain()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
