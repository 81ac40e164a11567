"""`EventStreamResponse`: the SSE response, one ASGI send per batch of frames.

Intentional divergence from starlette's `StreamingResponse` (do not "fix" without
reading this). Under uvicorn (ASGI spec 2.3) `StreamingResponse` runs every response as
an anyio task group of two tasks (the body, and a listener for `http.disconnect`) with
its cancel scopes; at 10,000 followers that is 20,000 tasks and their scopes, and it
was most of the API's memory per client and a large share of its CPU per frame. Here the
body is sent from the request's own task, and the disconnect listener is one plain
asyncio task whose completion cancels the sender. Each chunk the body yields (the hub
hands over every entry a wake-up found, joined) is one `send`, so one socket write per
client per wake-up.

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

    def __init__(self, body: AsyncIterator[bytes], headers: Mapping[str, str]) -> None:
        # not Response.__init__: that would add a Content-Length for an empty body
        self.body_iterator = body
        self.status_code = 200
        self.background = None
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
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not (listener.done() and not listener.cancelled()):
                raise  # cancelled from outside (the server stops): not ours to swallow
            sender.uncancel()
        finally:
            sending = False
            listener.cancel()
            with contextlib.suppress(Exception):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
