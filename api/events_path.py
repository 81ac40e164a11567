"""`GET /v1/sessions/{id}/events` served before FastAPI (by `api.outermost.Outermost`).

Why: an SSE response lives as long as its client, and everything on the request's call
stack lives with it. Through FastAPI that is starlette's middleware stack, the router,
FastAPI's request handler and its dependency results: ~10 KB per open stream
(tracemalloc, 1,000 idle followers), most of the API's memory per client at 10,000. This
answers the events route with the route's own functions
(`routes_sessions.session_events_response`, `auth.stream_tenant_of`, `guard.refusal`,
the errors' one rendering), so statuses, bodies and headers are the FastAPI route's;
that route stays declared (OpenAPI) and serves the requests the outermost layer passes
on.
"""

import re

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.types import Scope

from spool.api.auth import stream_tenant_of
from spool.api.errors import ApiError, error_response, redis_unavailable
from spool.api.formats import SPOOL
from spool.api.guard import refusal
from spool.api.routes_sessions import session_events_response
from spool.api.state import AppState

EVENTS_PATH = re.compile(r"/v1/sessions/([^/]+)/events")  # the route's own pattern


async def events_response(
    scope: Scope, state: AppState, session_id: str, *, check_host: bool
) -> Response:
    refused = refusal(scope, check_host=check_host)
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
