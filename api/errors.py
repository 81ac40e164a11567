"""API errors and their one mapping to HTTP: `{"error": {"code", "message"}}` (contract §2)."""

import logging
from collections.abc import Iterable
from typing import TypeVar

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException

from spool.shared.errors import SpoolError
from spool.shared.fair_pool import NO_CONNECTION
from spool_client.events import ErrorInfo

log = logging.getLogger(__name__)


class ApiError(SpoolError):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class ErrorBody(msgspec.Struct):
    """Every error response: `{"error": {"code": "snake_case", "message": "..."}}`."""

    error: ErrorInfo


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = msgspec.json.encode(ErrorBody(ErrorInfo(code=code, message=message)))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


T = TypeVar("T")
MAX_NESTING = 32  # deeper JSON is refused (msgspec recurses; so would every later encode)


def decode_json(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """A request body decoded, or the API's error: 400 not JSON (or nested deeper than
    `MAX_NESTING`), 422 not the expected shape."""
    try:
        value = decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_field", str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise _too_deep() from exc
    if nesting(value) > MAX_NESTING:
        raise _too_deep()
    return value


def _too_deep() -> ApiError:
    return ApiError(
        400, "too_deeply_nested", f"The body nests objects or arrays deeper than {MAX_NESTING}."
    )


def nesting(value: object, limit: int = MAX_NESTING + 1) -> int:
    """How deep objects and arrays nest in `value` (counted up to `limit`)."""
    if limit <= 0:
        return 0
    if isinstance(value, msgspec.Struct):
        children: Iterable[object] = msgspec.structs.astuple(value)
    elif isinstance(value, dict):
        children = value.values()
    elif isinstance(value, list | tuple):
        children = value
    else:
        return 0
    return 1 + max((nesting(c, limit - 1) for c in children), default=0)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(422, "invalid_field", f"{first.get('msg', 'invalid')} at {where}")

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def redis_down(request: Request, exc: Exception) -> Response:
        return redis_unavailable(exc)


# the bounded pool (`shared.fair_pool`) raises redis-py's ConnectionError with these words
# when no connection came free in time: Redis answers, but this process is too busy to
# hand its connections back


def redis_unavailable(exc: Exception) -> Response:
    if str(exc).startswith(NO_CONNECTION):
        log.warning("every Redis connection stayed busy: this API process is overloaded")
        return error_response(
            503,
            "server_busy",
            "This server is overloaded (all its Redis connections are busy); retry shortly.",
            {"Retry-After": "1"},
        )
    log.warning("Redis unreachable: %s", exc)
    return error_response(
        503, "redis_unavailable", "Redis is unreachable; retry shortly.", {"Retry-After": "1"}
    )
