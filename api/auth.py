"""Tenants (contract §4): API keys from `SPOOL_API_KEYS`; open access when none are set."""

import hmac
from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from api.state import State

OPEN_TENANT = "public"


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.headers.get("x-api-key")


def _tenant(request: Request, state: State) -> str:
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
