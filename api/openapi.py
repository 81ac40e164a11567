"""`/openapi.json`: FastAPI's paths and parameters, with Spool's bodies made of msgspec types.

Routes answer with msgspec-encoded `Response`s, so FastAPI cannot see their bodies. Each
route says what it takes and answers with `doc(...)` (its `openapi_extra`); `openapi()`
then replaces that operation's request body and responses with schemas generated from
the msgspec types, all in `components/schemas` (refs `#/components/schemas/<Name>`), and
documents every error status with the one error body, `{"error": {"code", "message"}}`.
FastAPI's own 422 (`detail[]`) is never documented: `api/errors.py` answers every
validation error with the error body.

Streaming routes are `text/event-stream`; their schema is `SpoolEvent`, the tagged union
of every event type in `spool_client.events.AnyEvent` (generated from the union, so a new
event type appears here by itself). The schema describes each frame's `data:` line.
"""

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from spool.api.errors import ErrorBody
from spool_client.events import AnyEvent

REF = "#/components/schemas/{name}"
EVENTS = "SpoolEvent"
DOC_KEY = "x-spool-doc"


class EventStream:
    """Marker for `doc(ok=...)`: the response is Server-Sent Events of `SpoolEvent`s."""


class PlainText:
    """Marker for `doc(ok=...)`: the response is `text/plain` (the metrics format)."""


class Raw:
    """For `doc(ok=...)`: a response in another system's format, given as its OpenAPI
    `content` (the adapters of docs/formats.md)."""

    def __init__(self, content: dict[str, Any]) -> None:
        self.content = content


def other_stream(description: str) -> Raw:
    """Server-Sent Events in another format: each frame's `data:` described in words."""
    return Raw({"text/event-stream": {"schema": {"type": "string", "description": description}}})


MARKERS = (EventStream, PlainText)
Body = type | Raw | None

ERROR_TEXT = {
    400: "Malformed request: body not JSON, or a resume cursor not of the form `<ms>-<seq>`",
    401: "Missing or invalid API key (or stream token)",
    403: "Forbidden",
    404: "Unknown, or another tenant's",
    409: "Conflict: the session is busy (`on_busy: reject`) or was just deleted, or the "
    "Idempotency-Key's first request is still running",
    413: "The body is larger than `SPOOL_MAX_BODY_BYTES`",
    415: "A body that is not `application/json`",
    422: "A field is invalid (unknown model or agent, missing template variable, ...)",
    429: "Over a limit; retry after `Retry-After` seconds",
    503: "Redis is unreachable; retry after `Retry-After` seconds",
}
RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "a key of SPOOL_API_KEYS"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
# a key in either header, or none when the service runs without SPOOL_API_KEYS
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}, {}]


@dataclass(frozen=True)
class Doc:
    ok: dict[int, Body]
    body: type | None = None
    errors: tuple[int, ...] = ()
    public: bool = False  # no API key (health, readiness, metrics)
    descriptions: dict[int, str] = field(default_factory=dict)
    example: dict[str, Any] | None = None  # a request body (Swagger UI's "Try it out")


_DOCS: dict[str, Doc] = {}


def doc(
    ok: dict[int, Body],
    *,
    body: type | None = None,
    errors: tuple[int, ...] = (),
    public: bool = False,
    descriptions: dict[int, str] | None = None,
    example: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A route's `openapi_extra`: its request body type, its success bodies by status
    (a msgspec type, `EventStream`, `PlainText`, or None for no body) and its errors."""
    key = f"doc-{len(_DOCS)}"
    _DOCS[key] = Doc(ok, body, errors, public, descriptions or {}, example)
    return {DOC_KEY: key}


def install(app: FastAPI) -> None:
    """Serve `openapi()` (built once) as the app's `/openapi.json`."""

    def cached() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi(app)
        return app.openapi_schema

    app.openapi = cached  # type: ignore[method-assign]


def openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    types = _referenced_types(document)
    found, generated = msgspec.json.schema_components([*types, AnyEvent], ref_template=REF)
    schemas.update(generated)
    schemas[EVENTS] = {
        "title": EVENTS,
        "description": "One event: the JSON `data:` of an SSE frame whose `event:` is its `type`.",
        **found[-1],
    }
    names = {t: _ref_name(s) for t, s in zip(types, found[:-1], strict=True)}
    for operation in _operations(document):
        key = operation.pop(DOC_KEY, None)
        if key is not None:
            _describe(operation, _DOCS[key], names)
        else:
            _replace_validation_error(operation)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components["securitySchemes"] = SECURITY_SCHEMES
    document["security"] = SECURITY
    return document


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for path in document.get("paths", {}).values() for op in path.values()]


def _referenced_types(document: dict[str, Any]) -> list[type]:
    """The msgspec types the documented operations name, in a stable order, plus the error."""
    types: dict[type, None] = {ErrorBody: None}
    for operation in _operations(document):
        key = operation.get(DOC_KEY)
        if key is None:
            continue
        spec = _DOCS[key]
        for t in (spec.body, *spec.ok.values()):
            if isinstance(t, type) and t not in MARKERS:
                types[t] = None
    return list(types)


def _ref_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    assert isinstance(ref, str), schema
    assert ref.startswith("#/components/schemas/"), schema
    return ref.rsplit("/", 1)[1]


def _describe(operation: dict[str, Any], spec: Doc, names: dict[type, str]) -> None:
    if spec.body is not None:
        media: dict[str, Any] = {"schema": _ref(names[spec.body])}
        if spec.example is not None:
            media["example"] = spec.example
        operation["requestBody"] = {"required": True, "content": {"application/json": media}}
    responses: dict[str, Any] = {}
    for status, body in spec.ok.items():
        responses[str(status)] = _success(status, body, spec, names)
    for status in spec.errors:
        responses[str(status)] = _error(status)
    operation["responses"] = responses
    if spec.public:
        operation["security"] = []


def _success(status: int, body: Body, spec: Doc, names: dict[type, str]) -> dict[str, Any]:
    description = spec.descriptions.get(status, HTTPStatus(status).phrase)
    if body is None:
        return {"description": description}
    if isinstance(body, Raw):
        return {"description": description, "content": body.content}
    if body is EventStream:
        content = {"text/event-stream": {"schema": _ref(EVENTS)}}
    elif body is PlainText:
        content = {"text/plain": {"schema": {"type": "string"}}}
    else:
        content = {"application/json": {"schema": _ref(names[body])}}
    return {"description": description, "content": content}


def _error(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_TEXT.get(status, "Error"),
        "content": {"application/json": {"schema": _ref(ErrorBody.__name__)}},
    }
    if status in (429, 503):
        response["headers"] = RETRY_AFTER
    return response


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _replace_validation_error(operation: dict[str, Any]) -> None:
    """A route without `doc(...)`: its 422 still has Spool's error body, not `detail[]`."""
    responses = operation.get("responses", {})
    if "422" in responses:
        responses["422"] = _error(422)
