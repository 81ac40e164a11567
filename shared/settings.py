"""The one typed settings object, read from `SPOOL_*` environment variables at start-up.

Nothing here runs at import time: processes call `Settings.from_env()` once and pass
the result down.
"""

import os
from collections.abc import Mapping
from typing import Any

import msgspec

from shared.errors import SpoolError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class SettingsError(SpoolError):
    """A `SPOOL_*` variable has a value Spool cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    redis_url: str = DEFAULT_REDIS_URL
    stream_redis_url: str | None = None
    default_model: str = "simulated"
    agents_file: str | None = None
    api_keys: dict[str, str] = {}  # key -> tenant
    secret: str = ""  # signs browser stream tokens (api/tokens.py)
    stream_token_ttl_s: int = 300
    retention_s: int = 3600
    sse_ping_s: float = 15.0
    sse_retry_ms: int = 1000
    log_level: str = "INFO"
    job_timeout_s: int = 3600
    max_tries: int = 3
    stream_maxlen: int = 0  # 0 = trim by time (retention) only
    max_body_bytes: int = 1 << 20
    redis_max_connections: int = 8

    @property
    def streams_url(self) -> str:
        return self.stream_redis_url or self.redis_url

    @property
    def open_access(self) -> bool:
        return not self.api_keys

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for field in msgspec.structs.fields(cls):
            value = env.get(f"SPOOL_{field.name.upper()}")
            if value is not None and value != "":
                raw[field.name] = value
        if "api_keys" in raw:
            raw["api_keys"] = parse_api_keys(raw["api_keys"])
        try:
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"bad SPOOL_* setting: {exc}") from exc


def parse_api_keys(text: str) -> dict[str, str]:
    """`"acme:k1,globex:k2"` → `{"k1": "acme", "k2": "globex"}`."""
    keys: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        tenant, sep, key = pair.partition(":")
        if not sep or not tenant or not key:
            raise SettingsError(f"SPOOL_API_KEYS entries are tenant:key, got {pair!r}")
        keys[key] = tenant
    return keys
