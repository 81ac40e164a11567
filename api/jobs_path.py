"""`POST /v1/jobs` and `POST /v1/stream` served before FastAPI (by `api.outermost.Outermost`).

Why: once a submission became one Redis script call (`shared/submit.py`), most of what
the API spent on a `POST` was FastAPI's: starlette's middleware stack, the router, and
the dependency solving of `State`, `Tenant`, the `Idempotency-Key` header and `?format=`
(py-spy, docs/benchmarks-history.md). This answers both routes with their own functions
(`routes_jobs.create_job_response`, `routes_jobs.create_and_stream_response`,
`auth.tenant_of`, `guard.refusal`, the errors' one rendering), in the order FastAPI
applies them (the guard, then the tenant, then the body), so statuses, bodies and
headers are the FastAPI routes'; those stay declared (OpenAPI) and serve what this
passes on: an `Idempotency-Key` FastAPI refuses itself (over 255 characters: its 422,
in its words), and everything the outermost layer passes on.

An exception other than the API's errors and Redis's is answered as starlette's
`ServerErrorMiddleware` answers it (a plain 500, then raised for the server to log).
"""

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from spool.api.auth import tenant_of
from spool.api.errors import ApiError, error_response, redis_unavailable
from spool.api.formats import SPOOL
from spool.api.guard import refusal
from spool.api.routes_jobs import (
    MAX_IDEMPOTENCY_KEY,
    create_and_stream_response,
    create_job_response,
)
from spool.api.state import AppState

JOBS_PATH, STREAM_PATH = "/v1/jobs", "/v1/stream"


async def serve_jobs(
    scope: Scope, receive: Receive, send: Send, state: AppState, *, check_host: bool
) -> bool:
    """Answer a `POST` to `JOBS_PATH` or `STREAM_PATH`; False: FastAPI's to answer."""
    headers = Headers(scope=scope)
    key = headers.get("idempotency-key")
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        return False
    try:
        response = await _response(scope, receive, state, headers, key, check_host)
    except Exception:
        await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
        raise
    await response(scope, receive, send)
    return True


async def _response(
    scope: Scope,
    receive: Receive,
    state: AppState,
    headers: Headers,
    key: str | None,
    check_host: bool,
) -> Response:
    refused = refusal(scope, check_host=check_host)
    if refused is not None:
        return refused
    try:
        tenant = tenant_of(state.settings, headers)
        request = Request(scope, receive)
        if scope["path"] == JOBS_PATH:
            return await create_job_response(request, state, tenant, key)
        format = QueryParams(scope["query_string"]).get("format", SPOOL)
        return await create_and_stream_response(request, state, tenant, key, format)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        return redis_unavailable(exc)
