"""`EventStreamResponse`: the SSE response, one ASGI send per batch of frames.

Intentional divergence from starlette's `StreamingResponse` (do not "fix" without
reading this). Under uvicorn (ASGI spec 2.3) `StreamingResponse` runs every response as
an anyio task group of two tasks (the body, and a listener for `http.disconnect`) with
their cancel scopes; at 10,000 followers that is 20,000 tasks and their scopes, a large
share of the API's memory per client and of its CPU per frame. Here the body is sent
from the request's own task, and the disconnect listener is one plain asyncio task whose
completion cancels the sender. Each chunk the body yields (the hub hands over every entry
a wake-up found, joined) is one `send`: one socket write per client per wake-up.

A send that makes no progress for `send_timeout_s` (the client stopped reading and the
socket's buffers are full) raises `TimeoutError` to the caller. The deadline is one
`asyncio.timeout` for the whole response, moved before and cleared after every send,
instead of a timeout context per send.

If the upstream API changes (`Task.uncancel`, the ASGI message shapes), the tests in
tests/test_event_stream.py fail.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self, body: AsyncIterator[bytes], headers: Mapping[str, str], send_timeout_s: float
    ) -> None:
        # not Response.__init__: that would add a Content-Length for an empty body
        self.body_iterator = body
        self.status_code = 200
        self.background = None
        self.send_timeout_s = send_timeout_s
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        sender = asyncio.current_task()
        assert sender is not None
        sending = True

        def gone(_: "asyncio.Task[None]") -> None:
            if sending:
                sender.cancel()  # the client left: stop waiting for events

        listener = asyncio.ensure_future(_until_disconnect(receive))
        listener.add_done_callback(gone)
        try:
            await self._send_all(send)
        except asyncio.CancelledError:
            if not (listener.done() and not listener.cancelled()):
                raise  # cancelled from outside (the server stops): not ours to swallow
            sender.uncancel()
        finally:
            sending = False
            listener.cancel()
            with contextlib.suppress(Exception):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]

    async def _send_all(self, send: Send) -> None:
        loop, timeout = asyncio.get_running_loop(), self.send_timeout_s
        async with asyncio.timeout(None) as deadline:
            async for chunk in self.body_iterator:
                deadline.reschedule(loop.time() + timeout)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                deadline.reschedule(None)
            deadline.reschedule(loop.time() + timeout)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
