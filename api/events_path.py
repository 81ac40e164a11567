"""`GET /v1/sessions/{id}/events` served before FastAPI: the outermost ASGI layer.

Why: an SSE response lives as long as its client, and everything on the request's call
stack lives with it. Through FastAPI that is starlette's middleware stack, the router,
FastAPI's request handler and its dependency results: ~10 KB per open stream
(tracemalloc, 1,000 idle followers), most of the API's memory per client at 10,000. This
layer answers the events route itself with the route's own functions
(`routes_sessions.session_events_response`, `auth.stream_tenant_of`, `guard.refusal`,
the errors' one rendering), so statuses, bodies and headers are the FastAPI route's;
that route stays declared (OpenAPI) and serves the requests this layer passes on: any
other path or method, a `root_path`, or an app whose lifespan did not run.

It also records the server's own `send` in the scope (`RAW_SEND`) for every request, for
the SSE responses' direct writes (`api.transport_writer`): the `send` a FastAPI route
receives is wrapped by starlette's middleware.
"""

import re

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from spool.api.auth import stream_tenant_of
from spool.api.errors import ApiError, error_response, redis_unavailable
from spool.api.formats import SPOOL
from spool.api.guard import refusal
from spool.api.routes_sessions import session_events_response
from spool.api.state import AppState
from spool.api.transport_writer import RAW_SEND

EVENTS_PATH = re.compile(r"/v1/sessions/([^/]+)/events")  # the route's own pattern


class Outermost:
    """Wraps the FastAPI app (its middleware stack: see `app.outermost`)."""

    def __init__(self, app: ASGIApp, *, check_host: bool, events: bool) -> None:
        self.app = app
        self.check_host = check_host
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND] = send
            if self.events and scope["method"] == "GET" and not scope.get("root_path"):
                match = EVENTS_PATH.fullmatch(scope["path"])
                state = scope.get("state", {}).get("spool")
                if match is not None and isinstance(state, AppState):
                    response = await self._events(scope, state, match.group(1))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _events(self, scope: Scope, state: AppState, session_id: str) -> Response:
        refused = refusal(scope, check_host=self.check_host)
        if refused is not None:
            return refused
        headers, query = Headers(scope=scope), QueryParams(scope["query_string"])
        try:
            tenant = stream_tenant_of(state.settings, headers, session_id, query.get("token"))
            return await session_events_response(
                state,
                tenant,
                session_id,
                job_id=query.get("job_id"),
                last_event_id=query.get("last_event_id"),
                last_event_id_header=headers.get("last-event-id"),
                format=query.get("format", SPOOL),
            )
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.headers)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            return redis_unavailable(exc)
