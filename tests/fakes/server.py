"""A fake model provider over real HTTP on 127.0.0.1: replays scripted replies and records
every request it received. Serves Anthropic's `/v1/messages` and OpenAI's
`/v1/chat/completions` (base URLs `http://127.0.0.1:<port>` and `.../v1`)."""

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from spool.cli.embedded import free_port
from tests.procs import wait_for


class DropConnection(Exception):
    """Raised inside a streaming body: the server cuts the connection mid-response."""


@dataclass
class Reply:
    status: int = 200
    sse: list[str] = field(default_factory=list)  # raw SSE frames, sent in order
    body: dict[str, Any] | None = None  # a JSON body instead of a stream
    drop: bool = False  # cut the connection after the frames
    stall: bool = False  # after the frames, wait until the fake is released
    headers: dict[str, str] = field(default_factory=dict)  # e.g. retry-after

    def response(self, release: asyncio.Event | None, hung_up: threading.Event) -> Response:
        if self.body is not None:
            return JSONResponse(self.body, status_code=self.status, headers=self.headers)

        async def frames() -> AsyncIterator[bytes]:
            done = False
            try:
                for frame in self.sse:
                    yield frame.encode()
                if self.stall and release is not None:
                    await release.wait()
                done = True
            finally:
                if not done:  # the client closed the stream before its end
                    hung_up.set()
            if self.drop:
                raise DropConnection("dropped by the fake provider")

        return StreamingResponse(
            frames(), status_code=self.status, media_type="text/event-stream", headers=self.headers
        )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    json: dict[str, Any]
    at: float = 0.0  # time.monotonic() on arrival


class FakeProvider:
    def __init__(self) -> None:
        self.port = free_port()
        self.script: deque[Reply] = deque()
        self.requests: list[Received] = []
        self.release: asyncio.Event | None = None
        self.hung_up = threading.Event()  # a client closed a stream before its end
        app = Starlette(
            routes=[
                Route("/v1/messages", self._handle, methods=["POST"]),
                Route("/v1/chat/completions", self._handle, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self, *replies: Reply) -> None:
        self.script = deque(replies)
        self.requests = []
        self.hung_up.clear()
        self.release = None  # a fresh one for the next stall (an earlier test may have set it)

    async def _handle(self, request: Request) -> Response:
        if self.release is None:
            self.release = asyncio.Event()
        self.requests.append(
            Received(
                request.url.path,
                dict(request.headers),
                json.loads(await request.body()),
                time.monotonic(),
            )
        )
        if not self.script:
            return JSONResponse({"error": {"type": "api_error", "message": "unscripted"}}, 500)
        return self.script.popleft().response(self.release, self.hung_up)

    def unstall(self) -> None:
        loop, release = self.server_loop, self.release
        if loop is not None and release is not None:
            loop.call_soon_threadsafe(release.set)

    @property
    def server_loop(self) -> asyncio.AbstractEventLoop | None:
        servers = getattr(self.server, "servers", [])
        return servers[0].get_loop() if servers else None

    def __enter__(self) -> "FakeProvider":
        self.thread.start()
        wait_for(lambda: self.server.started, 15, "the fake provider to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.unstall()
        self.server.should_exit = True
        self.thread.join(15)
