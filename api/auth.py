"""Tenants (contract §4): API keys from `SPOOL_API_KEYS`; open access when none are set.

A session's events route also takes a stream token (`api.tokens`), as browsers must.
"""

import hmac
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Query, Request

from spool.api import tokens
from spool.api.errors import ApiError
from spool.api.state import State
from spool.shared.settings import Settings

OPEN_TENANT = "public"


def _presented_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return headers.get("x-api-key")


def tenant_of(settings: Settings, headers: Mapping[str, str]) -> str:
    """The caller's tenant by its API key (`headers`: case-insensitive, as starlette's)."""
    if settings.open_access:
        return OPEN_TENANT
    key = _presented_key(headers)
    if key is None:
        raise ApiError(401, "missing_api_key", "Send 'Authorization: Bearer <key>' or 'X-API-Key'.")
    for known, tenant in settings.api_keys.items():
        if hmac.compare_digest(known.encode(), key.encode()):
            return tenant
    raise ApiError(401, "invalid_api_key", "The API key is not valid.")


async def _tenant(request: Request, state: State) -> str:
    # async (as the dependencies below): a plain `def` dependency costs a thread hop
    return tenant_of(state.settings, request.headers)


Tenant = Annotated[str, Depends(_tenant)]


async def _stream_tenant(
    request: Request,
    state: State,
    session_id: str,
    token: Annotated[str | None, Query(description="from POST /v1/sessions/{id}/token")] = None,
) -> str:
    return stream_tenant_of(state.settings, request.headers, session_id, token)


def stream_tenant_of(
    settings: Settings, headers: Mapping[str, str], session_id: str, token: str | None
) -> str:
    """A key as for every route, or else a stream token minted for this very session."""
    if token is None or settings.open_access or _presented_key(headers) is not None:
        return tenant_of(settings, headers)
    tenant = tokens.verify(settings, token, session_id)
    if tenant is None:
        raise ApiError(
            401, "invalid_token", "The stream token is invalid, expired or not for this session."
        )
    return tenant


StreamTenant = Annotated[str, Depends(_stream_tenant)]
"""The tenant of a session's events route: `Tenant`, or `?token=` for browsers (§4)."""
