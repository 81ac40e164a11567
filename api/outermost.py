"""The outermost ASGI layer: the routes that are answered before FastAPI, and the raw `send`.

It wraps the FastAPI app's middleware stack (see `app._outermost`) and answers itself,
with each route's own functions:
- `GET /v1/sessions/{id}/events` (`api.events_path`): an open stream keeps none of
  starlette's and FastAPI's per-request state alive;
- `POST /v1/jobs` and `POST /v1/stream` (`api.jobs_path`): a submission skips the
  middleware stack, the router and FastAPI's dependency solving.
Everything else goes to FastAPI, as do these routes' requests with a `root_path`, or
when the app's lifespan did not run (no state). The FastAPI routes stay declared
(OpenAPI); tests/test_outermost.py compares the app with and without this layer.

It also records the server's own `send` in the scope (`RAW_SEND`) for every request, for
the SSE responses' direct writes (`api.transport_writer`): the `send` a FastAPI route
receives is wrapped by starlette's middleware. It is removed when the request ends: that
`send` is a method of uvicorn's request cycle, which holds the scope, so the entry makes a
reference cycle that would keep the request's whole state (its connection, its stream's
objects) alive until the collector's next full pass, and such passes then freed a wave of
ended streams at once.
"""

from starlette.types import ASGIApp, Receive, Scope, Send

from spool.api.events_path import EVENTS_PATH, events_response
from spool.api.jobs_path import JOBS_PATH, STREAM_PATH, serve_jobs
from spool.api.state import AppState
from spool.api.transport_writer import RAW_SEND

_JOBS_PATHS = frozenset({JOBS_PATH, STREAM_PATH})


class Outermost:
    """Wraps the FastAPI app (its middleware stack: see `app._outermost`). `events`: answer
    the events route; `jobs`: answer the two submission routes."""

    def __init__(self, app: ASGIApp, *, check_host: bool, events: bool, jobs: bool = False) -> None:
        self.app = app
        self.check_host = check_host
        self.events = events
        self.jobs = jobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[RAW_SEND] = send
        try:
            # answered here, not in a helper coroutine: every open stream would hold its frame
            state = None if scope.get("root_path") else _state(scope)
            if state is not None:
                method, path = scope["method"], scope["path"]
                if method == "POST" and self.jobs and path in _JOBS_PATHS:
                    if await serve_jobs(scope, receive, send, state, check_host=self.check_host):
                        return
                elif method == "GET" and self.events:
                    match = EVENTS_PATH.fullmatch(path)
                    if match is not None:
                        response = await events_response(
                            scope, state, match.group(1), check_host=self.check_host
                        )
                        await response(scope, receive, send)
                        return
            await self.app(scope, receive, send)
        finally:
            scope.pop(RAW_SEND, None)  # see above


def _state(scope: Scope) -> AppState | None:
    state = scope.get("state", {}).get("spool")
    return state if isinstance(state, AppState) else None
