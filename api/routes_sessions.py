"""Session routes: read, delete, and follow a session's events (contract §2, §3).

A session is the caller's tenant plus the id in the path (`SessionRef`): another tenant's
session of the same id is another session, which this caller cannot see.
"""

import re
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

import msgspec
from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response

from spool.api import tokens
from spool.api.auth import StreamTenant, Tenant
from spool.api.deletion import delete_session as delete_everything
from spool.api.errors import ApiError
from spool.api.formats import SPOOL, FormatName, parse_format
from spool.api.openapi import EventStream, doc
from spool.api.routes_jobs import json_response
from spool.api.sse import parse_cursor, resolve_cursor, sse_response
from spool.api.state import AppState, State
from spool.shared.jobs import SESSION_ID_PATTERN, JobView
from spool.shared.keys import SessionRef

router = APIRouter()
events_router = APIRouter()

SessionIdPath = Annotated[str, Path(description=f"matches {SESSION_ID_PATTERN}")]
_SESSION_ID = re.compile(SESSION_ID_PATTERN)


def session_of(tenant: str, session_id: str) -> SessionRef:
    """The caller's session of that id (checked here: pydantic's regex engine has no `\\Z`)."""
    if not _SESSION_ID.match(session_id):
        raise ApiError(422, "invalid_field", f"session_id must match {SESSION_ID_PATTERN}")
    return SessionRef(tenant, session_id)


class SessionView(msgspec.Struct):
    session_id: str
    created_at: datetime
    jobs: list[JobView]
    busy: bool


async def owned_session(state: AppState, session: SessionRef) -> int:
    """The session's creation time (ms); 404 if the tenant has no session of that id."""
    info = await state.session_owner(session)
    if info is None or info.tenant != session.tenant:
        raise ApiError(404, "session_not_found", f"No session {session.session_id!r}.")
    return info.created_at_ms


SESSION_ERRORS = (401, 404, 422, 503)


@router.get(
    "/v1/sessions/{session_id}",
    tags=["sessions"],
    openapi_extra=doc({200: SessionView}, errors=SESSION_ERRORS),
)
async def get_session(session_id: SessionIdPath, state: State, tenant: Tenant) -> Response:
    session = session_of(tenant, session_id)
    created = await owned_session(state, session)
    jobs = await state.store.load_many(session, await state.store.job_ids(session))
    busy = await state.sessions.busy(session)
    views = [JobView.of(j) for j in jobs]
    created_at = datetime.fromtimestamp(created / 1000, UTC)
    return json_response(SessionView(session_id, created_at, views, busy))


@router.delete(
    "/v1/sessions/{session_id}",
    status_code=204,
    tags=["sessions"],
    openapi_extra=doc({204: None}, errors=SESSION_ERRORS, descriptions={204: "Deleted"}),
)
async def delete_session(session_id: SessionIdPath, state: State, tenant: Tenant) -> Response:
    """Cancel the session's jobs, end its open streams (`session.deleted`), remove its data."""
    session = session_of(tenant, session_id)
    await owned_session(state, session)
    await delete_everything(state, session)
    return Response(status_code=204)


@router.post(
    "/v1/sessions/{session_id}/token",
    tags=["sessions"],
    openapi_extra=doc({200: tokens.StreamToken}, errors=SESSION_ERRORS),
)
async def stream_token(session_id: SessionIdPath, state: State, tenant: Tenant) -> Response:
    """A short-lived token for `?token=` on this session's events URL (for EventSource)."""
    await owned_session(state, session_of(tenant, session_id))
    token = tokens.mint(state.settings, tenant, session_id)
    url = f"/v1/sessions/{session_id}/events?{urlencode({'token': token})}"
    return json_response(tokens.StreamToken(token, state.settings.stream_token_ttl_s, url))


@events_router.get(
    "/v1/sessions/{session_id}/events",
    tags=["sessions"],
    openapi_extra=doc(
        {200: EventStream, 204: None},
        errors=(400, 401, 404, 422, 429, 503),
        descriptions={204: "The followed job ended at or before the cursor: nothing more"},
    ),
)
async def session_events(
    session_id: SessionIdPath,
    state: State,
    tenant: StreamTenant,
    job_id: str | None = None,
    last_event_id: Annotated[str | None, Query()] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    format: FormatName = SPOOL,
) -> Response:
    """Follow a session over SSE; resume with `Last-Event-ID` (header) or `last_event_id`;
    `format` picks the wire format (`spool`, or another client's, docs/formats.md)."""
    return await session_events_response(
        state, tenant, session_id, job_id, last_event_id, last_event_id_header, format
    )


async def session_events_response(
    state: AppState,
    tenant: str,
    session_id: str,
    job_id: str | None,
    last_event_id: str | None,
    last_event_id_header: str | None,
    format: str,
) -> Response:
    """The events route, also served before FastAPI (`api.events_path`)."""
    fmt = parse_format(format)
    start = parse_cursor(last_event_id_header, last_event_id)
    session = session_of(tenant, session_id)
    await owned_session(state, session)
    cursor = await resolve_cursor(state, session, job_id, start)
    return sse_response(state, session, cursor, fmt)
