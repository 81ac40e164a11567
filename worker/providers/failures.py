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

A provider's `Retry-After` (seconds or an HTTP date) or `retry-after-ms` header rides on
the error as `retry_after_s`; `retry_delay` turns it and the attempt number into the wait
before the next try: never sooner than the provider asked, and spread by jitter so that
many jobs limited at once do not come back at once.
"""

import random
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
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


MAX_RETRY_AFTER_S = 60.0  # a provider asking for a longer wait is not retried: the job fails


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the provider asked us to wait: `retry-after-ms`, else `retry-after` as a
    number of seconds or an HTTP date; None when absent or unreadable."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def retry_delay(
    attempt: int,
    base_s: float,
    retry_after_s: float | None,
    rand: Callable[[], float] = random.random,
) -> float:
    """The wait before retry `attempt + 1` (attempt counts from 0).

    Without `Retry-After`: exponential backoff with "equal jitter", uniformly in
    [b/2, b) for b = base_s * 2**attempt. With it: that many seconds plus up to one
    `base_s` of jitter (never sooner than asked)."""
    if retry_after_s is not None:
        return retry_after_s + rand() * base_s
    backoff: float = base_s * 2**attempt
    return backoff / 2 + rand() * backoff / 2


def classify(exc: Exception) -> ProviderError:
    if isinstance(exc, TIMEOUTS):
        return ProviderError("provider_timeout", f"the provider timed out: {exc}")
    if isinstance(exc, CONNECTION):
        return ProviderError("provider_disconnected", f"connection failed: {exc}", retryable=True)
    if isinstance(exc, STATUS):
        error = _from_status(exc.status_code, error_type(exc.body), str(exc))
        error.retry_after_s = retry_after(exc.response.headers)
        if error.retry_after_s is not None and error.retry_after_s > MAX_RETRY_AFTER_S:
            error.retryable = False
        return error
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
