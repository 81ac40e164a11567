"""Request checks before any route runs (contract §4), as a plain ASGI middleware.

- A `POST` with a body must say `Content-Type: application/json` (else 415), in every
  mode: a web page can send `text/plain` cross-origin without a preflight, JSON it cannot.
- Open mode (no `SPOOL_API_KEYS`) answers only requests whose `Host` is a loopback name,
  so a page on another origin cannot reach a developer's local service through DNS
  rebinding (its requests carry the attacker's host name). `--allow-open` (a private
  network, behind its own names) turns this check off.
"""

import ipaddress

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from spool.api.errors import error_response

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


def host_name(host: str) -> str:
    """`"[::1]:8000"` → `"::1"`, `"localhost:8000"` → `"localhost"`."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name
    return host


def is_loopback_host(host: str) -> bool:
    name = host_name(host.strip().lower())
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    return (length is not None and length.strip() != "0") or (
        _header(scope, b"transfer-encoding") is not None
    )


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class Guard:
    def __init__(self, app: ASGIApp, *, check_host: bool) -> None:
        self.app = app
        self.check_host = check_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = refusal(scope, check_host=self.check_host)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def refusal(scope: Scope, *, check_host: bool) -> Response | None:
    """The error answering an HTTP request these checks refuse; None when it passes."""
    if check_host and not is_loopback_host(_header(scope, b"host") or ""):
        return error_response(
            403,
            "host_not_allowed",
            "This open (keyless) service answers loopback host names only.",
        )
    content_type = _header(scope, b"content-type")
    if scope["method"] == "POST" and _has_body(scope) and not _is_json(content_type):
        return error_response(415, "unsupported_media_type", "Send the body as application/json.")
    return None
