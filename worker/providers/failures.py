"""Provider failures → `ProviderError`, one mapping for both SDKs.

| what | code | retryable (before any delta) |
| --- | --- | --- |
| 401 / 403, `authentication_error` | `provider_auth` | no |
| 429, `rate_limit_error` | `provider_rate_limited` | yes |
| 529, `overloaded_error` | `provider_overloaded` | yes |
| other 5xx, `api_error` | `provider_unavailable` | yes |
| other 4xx | `provider_bad_request` | no |
| connect / read timeout | `provider_timeout` | no |
| refused connection, stream cut mid-way | `provider_disconnected` | yes |
"""

from typing import Any

import anthropic
import httpx2
import openai

from spool.worker.errors import ProviderError

TIMEOUTS = (anthropic.APITimeoutError, openai.APITimeoutError, httpx2.TimeoutException)
CONNECTION = (anthropic.APIConnectionError, openai.APIConnectionError, httpx2.TransportError)
STATUS = (anthropic.APIStatusError, openai.APIStatusError)
SDK_ERRORS = (anthropic.APIError, openai.APIError, httpx2.HTTPError)

_BY_STATUS = {401: "provider_auth", 403: "provider_auth", 429: "provider_rate_limited"}
_BY_TYPE = {
    "authentication_error": ("provider_auth", False),
    "permission_error": ("provider_auth", False),
    "rate_limit_error": ("provider_rate_limited", True),
    "overloaded_error": ("provider_overloaded", True),
    "api_error": ("provider_unavailable", True),
}


def error_type(body: Any) -> str | None:
    """`error.type` of an error body such as `{"type": "error", "error": {"type": ...}}`."""
    inner = body.get("error", body) if isinstance(body, dict) else None
    kind = inner.get("type") if isinstance(inner, dict) else None
    return kind if isinstance(kind, str) else None


def classify(exc: Exception) -> ProviderError:
    if isinstance(exc, TIMEOUTS):
        return ProviderError("provider_timeout", f"the provider timed out: {exc}")
    if isinstance(exc, CONNECTION):
        return ProviderError("provider_disconnected", f"connection failed: {exc}", retryable=True)
    if isinstance(exc, STATUS):
        return _from_status(exc.status_code, error_type(exc.body), str(exc))
    if isinstance(exc, anthropic.APIError | openai.APIError):  # an error event mid-stream
        return _from_status(200, error_type(exc.body), str(exc))
    return ProviderError("provider_error", f"{type(exc).__name__}: {exc}")


def _from_status(status: int, kind: str | None, message: str) -> ProviderError:
    if kind in _BY_TYPE:
        code, retryable = _BY_TYPE[kind]
        return ProviderError(code, message, retryable=retryable)
    if status in _BY_STATUS:
        code = _BY_STATUS[status]
        return ProviderError(code, message, retryable=code == "provider_rate_limited")
    if status == 529:
        return ProviderError("provider_overloaded", message, retryable=True)
    if status >= 500:
        return ProviderError("provider_unavailable", message, retryable=True)
    if status >= 400:
        return ProviderError("provider_bad_request", message)
    return ProviderError("provider_error", message, retryable=True)
