"""Browser stream tokens (contract §4): an EventSource cannot send headers.

`POST /v1/sessions/{id}/token` mints `<payload>.<signature>` (both base64url): the
payload binds tenant, session and expiry; the signature is HMAC-SHA256 with
`SPOOL_SECRET`. A token is accepted as `?token=` on that session's events URL only,
and only when the stream is opened (an open stream outlives its token).

Without `SPOOL_SECRET`, the key is derived from `SPOOL_API_KEYS`, so every API process
with the same keys agrees; set `SPOOL_SECRET` to rotate tokens independently.
"""

import base64
import binascii
import hashlib
import hmac
import time

import msgspec

from spool.shared.settings import Settings


class TokenClaims(msgspec.Struct, forbid_unknown_fields=True):
    tenant: str
    session_id: str
    expires: int  # unix seconds


class StreamToken(msgspec.Struct):
    """The answer of `POST /v1/sessions/{id}/token`."""

    token: str
    expires_in: int
    events_url: str


def signing_key(settings: Settings) -> bytes:
    if settings.secret:
        return settings.secret.encode()
    keys = ",".join(sorted(f"{tenant}:{key}" for key, tenant in settings.api_keys.items()))
    return hashlib.sha256(b"spool-stream-token\0" + keys.encode()).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def mint(settings: Settings, tenant: str, session_id: str, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + settings.stream_token_ttl_s)
    payload = _b64(msgspec.json.encode(TokenClaims(tenant, session_id, expires)))
    return f"{payload}.{_sign(signing_key(settings), payload)}"


def verify(settings: Settings, token: str, session_id: str, now: float | None = None) -> str | None:
    """The tenant the token was minted for, if it is genuine, unexpired and for `session_id`."""
    payload, _, signature = token.partition(".")
    if not hmac.compare_digest(_sign(signing_key(settings), payload).encode(), signature.encode()):
        return None
    try:
        claims = msgspec.json.decode(_unb64(payload), type=TokenClaims)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
    if claims.session_id != session_id or claims.expires < (time.time() if now is None else now):
        return None
    return claims.tenant
