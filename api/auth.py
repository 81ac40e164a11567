"""Tenants (contract §4): API keys from `SPOOL_API_KEYS`; open access when none are set.

A session's events route also takes a stream token (`api.tokens`), as browsers must.
"""

import hmac
from typing import Annotated

from fastapi import Depends, Query, Request

from spool.api import tokens
from spool.api.errors import ApiError
from spool.api.state import State

OPEN_TENANT = "public"


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.headers.get("x-api-key")


async def _tenant(request: Request, state: State) -> str:
    # async (as the dependencies below): a plain `def` dependency costs a thread hop
    settings = state.settings
    if settings.open_access:
        return OPEN_TENANT
    key = _presented_key(request)
    if key is None:
        raise ApiError(401, "missing_api_key", "Send 'Authorization: Bearer <key>' or 'X-API-Key'.")
    for known, tenant in settings.api_keys.items():
        if hmac.compare_digest(known.encode(), key.encode()):
            return tenant
    raise ApiError(401, "invalid_api_key", "The API key is not valid.")


Tenant = Annotated[str, Depends(_tenant)]


async def _stream_tenant(
    request: Request,
    state: State,
    session_id: str,
    token: Annotated[str | None, Query(description="from POST /v1/sessions/{id}/token")] = None,
) -> str:
    """A key as for every route, or else a stream token minted for this very session."""
    if token is None or state.settings.open_access or _presented_key(request) is not None:
        return await _tenant(request, state)
    tenant = tokens.verify(state.settings, token, session_id)
    if tenant is None:
        raise ApiError(
            401, "invalid_token", "The stream token is invalid, expired or not for this session."
        )
    return tenant


StreamTenant = Annotated[str, Depends(_stream_tenant)]
"""The tenant of a session's events route: `Tenant`, or `?token=` for browsers (§4)."""
