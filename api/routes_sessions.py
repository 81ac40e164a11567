"""Session routes: read, delete, and follow a session's events (contract §2, §3)."""

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

import msgspec
from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from spool.api import tokens
from spool.api.auth import StreamTenant, Tenant
from spool.api.cancel import request_cancel
from spool.api.errors import ApiError
from spool.api.openapi import EventStream, doc
from spool.api.routes_jobs import json_response
from spool.api.sse import parse_cursor, resolve_cursor, sse_response
from spool.api.state import AppState, State
from spool.shared import keys
from spool.shared.jobs import FINISHED_STATUSES, JobView

router = APIRouter()
events_router = APIRouter()


class SessionView(msgspec.Struct):
    session_id: str
    created_at: datetime
    jobs: list[JobView]
    busy: bool


async def owned_session(state: AppState, session_id: str, tenant: str) -> int:
    """The session's creation time (ms); 404 if it does not exist or is another tenant's."""
    info = await state.session_owner(session_id)
    if info is None or info.tenant != tenant:
        raise ApiError(404, "session_not_found", f"No session {session_id!r}.")
    return info.created_at_ms


@router.get(
    "/v1/sessions/{session_id}",
    tags=["sessions"],
    openapi_extra=doc({200: SessionView}, errors=(401, 404, 503)),
)
async def get_session(session_id: str, state: State, tenant: Tenant) -> Response:
    created = await owned_session(state, session_id, tenant)
    jobs = await state.store.load_many(await state.store.job_ids(session_id))
    busy = await state.sessions.busy(session_id)
    views = [JobView.of(j) for j in jobs]
    created_at = datetime.fromtimestamp(created / 1000, UTC)
    return json_response(SessionView(session_id, created_at, views, busy))


@router.delete(
    "/v1/sessions/{session_id}",
    status_code=204,
    tags=["sessions"],
    openapi_extra=doc({204: None}, errors=(401, 404, 503), descriptions={204: "Deleted"}),
)
async def delete_session(session_id: str, state: State, tenant: Tenant) -> Response:
    await owned_session(state, session_id, tenant)
    for job in await state.store.load_many(await state.store.job_ids(session_id)):
        if job.status not in FINISHED_STATUSES:
            await request_cancel(state, job.job_id)
    await state.store.delete_session(session_id)
    await state.clients.streams.delete(keys.stream_key(session_id), keys.marks_key(session_id))
    return Response(status_code=204)


@router.post(
    "/v1/sessions/{session_id}/token",
    tags=["sessions"],
    openapi_extra=doc({200: tokens.StreamToken}, errors=(401, 404, 503)),
)
async def stream_token(session_id: str, state: State, tenant: Tenant) -> Response:
    """A short-lived token for `?token=` on this session's events URL (for EventSource)."""
    await owned_session(state, session_id, tenant)
    token = tokens.mint(state.settings, tenant, session_id)
    url = f"/v1/sessions/{session_id}/events?{urlencode({'token': token})}"
    return json_response(tokens.StreamToken(token, state.settings.stream_token_ttl_s, url))


@events_router.get(
    "/v1/sessions/{session_id}/events",
    tags=["sessions"],
    openapi_extra=doc(
        {200: EventStream, 204: None},
        errors=(400, 401, 404, 422, 503),
        descriptions={204: "The followed job ended at or before the cursor: nothing more"},
    ),
)
async def session_events(
    session_id: str,
    state: State,
    tenant: StreamTenant,
    job_id: str | None = None,
    last_event_id: Annotated[str | None, Query()] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """Follow a session over SSE; resume with `Last-Event-ID` (header) or `last_event_id`."""
    start = parse_cursor(last_event_id_header, last_event_id)
    await owned_session(state, session_id, tenant)
    cursor = await resolve_cursor(state, session_id, job_id, start)
    return sse_response(state, session_id, cursor)
