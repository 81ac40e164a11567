"""What the routes that speak other systems' request shapes share (contract §10).

Each such route decodes its own body, maps it onto a `JobRequest` and submits it like
`POST /v1/jobs` (same validation, auth, limits, idempotency), then answers with the job's
stream in its format. Foreign bodies ignore fields they do not know: those clients send
their own extras (`user`, `n`, `stream_options` ...), and refusing them would break them.
"""

from typing import Any, TypeVar

import msgspec
from fastapi import Request

from spool.api.errors import ApiError
from spool.api.routes_jobs import read_body
from spool.api.state import AppState
from spool.api.submission import agents_of
from spool.shared.jobs import JobRequest

T = TypeVar("T")


async def decode_body(request: Request, state: AppState, kind: type[T]) -> T:
    body = await read_body(request, state.settings.max_body_bytes)
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_field", str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}") from exc


def agent_or_model(state: AppState, name: str | None) -> dict[str, str]:
    """`{"agent": name}` when the agents file names such an agent, else `{"model": name}`
    (then validated as a model, so an unknown name is a 422 naming the known providers)."""
    if not name:
        return {}
    if name in agents_of(state).agents:
        return {"agent": name}
    return {"model": name}


def job_request(**fields: Any) -> JobRequest:
    """A `JobRequest` from fields (None = not given), validated as `POST /v1/jobs` is."""
    given = {k: v for k, v in fields.items() if v is not None}
    try:
        return msgspec.convert(given, JobRequest)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_field", str(exc)) from exc
