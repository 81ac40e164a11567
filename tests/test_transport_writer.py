"""Direct writes of SSE frames to uvicorn's transport (`api/transport_writer.py`) and the
hub's writes to caught-up followers (`Follower.attach`).

The first tests pin the uvicorn internals the direct writes rely on: if uvicorn changes
its `RequestResponseCycle` (httptools), they fail. Under another protocol (h11) the
writer is not used and the SSE response goes through ASGI `send`, exactly as before.
"""

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from spool.api.outermost import Outermost
from spool.api.transport_writer import TransportWriter, transport_writer
from tests.inprocess import serving

pytestmark = pytest.mark.inprocess

CHUNKS = [b"data: one\n\n", b"data: two\n\n" * 300, b": ping\n\n"]


def outermost(app: ASGIApp) -> Outermost:
    return Outermost(app, check_host=False, events=False)


class Probe:
    """A plain ASGI app: the head through `send`, the chunks through the writer if there
    is one (else `send`), the end through `send`; records which way it went."""

    def __init__(self) -> None:
        self.writers: list[TransportWriter | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        writer = transport_writer(scope)
        self.writers.append(writer)
        for chunk in CHUNKS:
            if writer is None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            else:
                assert not writer.disconnected
                await writer.drain()
                assert writer.offer(chunk)  # drained, and the client reads
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def test_uvicorns_httptools_cycle_takes_direct_writes() -> None:
    probe = Probe()
    async with serving(outermost(probe), "httptools", "off") as url, httpx.AsyncClient() as http:
        for _ in range(2):  # keep-alive: the second response on the same connection
            response = await http.get(url + "/events")
            assert response.status_code == 200
            assert response.headers["transfer-encoding"] == "chunked"
            assert response.content == b"".join(CHUNKS)
    assert len(probe.writers) == 2
    assert all(w is not None for w in probe.writers)


async def test_another_protocol_falls_back_to_asgi_send() -> None:
    probe = Probe()
    async with serving(outermost(probe), "h11", "off") as url, httpx.AsyncClient() as http:
        response = await http.get(url + "/events")
        assert response.content == b"".join(CHUNKS)
    assert probe.writers == [None]


async def test_without_the_outermost_layer_there_is_no_writer() -> None:
    probe = Probe()
    async with serving(probe, "httptools", "off") as url, httpx.AsyncClient() as http:
        response = await http.get(url + "/events")
        assert response.content == b"".join(CHUNKS)
    assert probe.writers == [None]
