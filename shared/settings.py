"""The one typed settings object, read from `SPOOL_*` environment variables at start-up.

Nothing here runs at import time: processes call `Settings.from_env()` once and pass
the result down.
"""

import difflib
import os
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

import msgspec

from spool.shared.errors import SpoolError
from spool.shared.keys import DEFAULT_PREFIX, PREFIX_PATTERN, TENANT_PATTERN
from spool.shared.sentinel import BadSentinelUrl, is_sentinel_url, parse_sentinel_url

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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
    log_format: Literal["text", "json"] = "text"  # json: one object per line (shared/logs.py)
    job_timeout_s: float = 3600.0  # a job's whole-job deadline unless it sets `timeout_s`
    approval_timeout_s: float = 3600.0  # a pending approval counts as rejected after this
    max_tries: int = 3
    key_prefix: str = DEFAULT_PREFIX  # every Redis key starts with it (deployments can share)
    stream_maxlen: int = 100_000  # a session stream keeps about this many entries (0: no cap)
    # limits (contract §4); each answered 429 with Retry-After
    tenant_max_active_jobs: int = 1000  # queued + running per tenant
    tenant_max_running: int = 0  # running per tenant; 0 = half the live worker capacity
    tenant_max_streams: int = 10_000  # open event streams per tenant per API process
    job_max_events: int = 100_000  # past it a job ends `job.failed` `output_limit`
    job_max_bytes: int = 32 << 20  # encoded event bytes one job may append
    event_max_bytes: int = 64 << 10  # a larger text delta is split (other events capped)
    sse_send_timeout_s: float = 30.0  # a reader without progress this long is disconnected
    max_body_bytes: int = 1 << 20
    redis_max_connections: int = 8
    heartbeat_s: float = 2.0  # a worker renews its running jobs' leases this often
    lease_s: float = 10.0  # a job whose worker stops renewing is run again after this
    shutdown_grace_s: float = 30.0  # SIGTERM: running jobs get this long before being handed back
    coalesce_ms: float = 0.0  # merge text deltas this long (per job: parameters.coalesce_ms)
    # a delta still waiting for an append round this long (the stream is behind) takes in the
    # next ones (adaptive coalescing, worker/publisher.py); a negative value turns it off
    behind_ms: float = 20.0
    poll_s: float = 1.0  # the worker's queue poll, a safety net behind the wake-up messages
    queue_max_wait_s: float = 3600.0  # a job that waited longer fails with `expired` (0: never)
    # model providers (worker)
    provider_connect_timeout_s: float = 10.0
    provider_first_token_timeout_s: float = 120.0
    provider_idle_timeout_s: float = 60.0
    provider_retries: int = 2  # extra tries on 429 / overloaded / 5xx before any delta
    provider_backoff_s: float = 1.0  # retry delay ~this, doubling, jittered; Retry-After wins
    # tools and conversation memory (worker)
    tool_timeout_s: float = 30.0
    tools_module: str | None = None  # "pkg.module": its TOOLS list of functions is registered
    tools_refresh_s: float = 20.0  # workers re-publish the tool names they serve this often
    history_max_jobs: int = 20
    history_max_bytes: int = 256_000
    # metrics (worker): GET /metrics on this port when set (the API serves its own /metrics)
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "127.0.0.1"  # 0.0.0.0 where Prometheus scrapes pods

    @property
    def streams_url(self) -> str:
        return self.stream_redis_url or self.redis_url

    @property
    def open_access(self) -> bool:
        return not self.api_keys

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """The settings from `SPOOL_*` variables; `SettingsError` names the first bad one."""
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for field in msgspec.structs.fields(cls):
            name = env_name(field.name)
            value = env.get(name)
            if value is not None and value != "":
                raw[field.name] = _parse(name, value, field.type)
        settings = cls(**raw)
        if settings.log_level.upper() not in LOG_LEVELS:
            levels = ", ".join(LOG_LEVELS)
            raise SettingsError(
                f"SPOOL_LOG_LEVEL={settings.log_level!r} is not valid: expected one of {levels}"
            )
        if not PREFIX_PATTERN.match(settings.key_prefix):
            raise SettingsError(
                f"SPOOL_KEY_PREFIX={settings.key_prefix!r} is not valid: "
                "expected 1-64 of A-Z a-z 0-9 . _ : -"
            )
        settings.check_urls()
        return settings

    def check_urls(self) -> None:
        """A `redis+sentinel://` URL must name Sentinels and a master."""
        for name, url in (("REDIS_URL", self.redis_url), ("STREAM_REDIS_URL", self.streams_url)):
            if is_sentinel_url(url):
                try:
                    parse_sentinel_url(url)
                except BadSentinelUrl as exc:
                    raise SettingsError(f"SPOOL_{name}: {exc}") from exc


def env_name(field_name: str) -> str:
    return f"SPOOL_{field_name.upper()}"


def _parse(name: str, value: str, kind: Any) -> Any:
    if name == "SPOOL_API_KEYS":
        return parse_api_keys(value)
    try:
        return msgspec.convert(value, kind, strict=False)
    except msgspec.ValidationError:
        raise SettingsError(f"{name}={value!r} is not valid: expected {_expected(kind)}") from None


def _expected(kind: Any) -> str:
    """What a value of this type looks like, in words."""
    args = [a for a in get_args(kind) if a is not type(None)]
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(map(str, args))
    if args:  # `T | None`
        return _expected(args[0])
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
    return names.get(kind, str(kind))


# `SPOOL_*` variables that are read, but are not settings of the server processes. One
# list, so that the start-up warning about unknown names knows them all.
OTHER_VARIABLES = {
    "SPOOL_URL": "the client commands' service URL",
    "SPOOL_API_KEY": "the client commands' API key",
    "SPOOL_EMBEDDED_REDIS_PORT": "spool dev: the embedded Redis's port (default: a free one)",
    "SPOOL_TEST_REDIS_URL": "the test suite's Redis (default: an embedded one)",
}


def known_variables() -> set[str]:
    return {env_name(f.name) for f in msgspec.structs.fields(Settings)} | set(OTHER_VARIABLES)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning per `SPOOL_*` variable Spool does not read (a typo, most likely)."""
    known = known_variables()
    warnings = []
    for name in sorted(n for n in environ if n.startswith("SPOOL_") and n not in known):
        close = difflib.get_close_matches(name[6:], [k[6:] for k in known], n=1, cutoff=0.75)
        hint = f" (did you mean SPOOL_{close[0]}?)" if close else ""
        warnings.append(f"unknown setting {name} is ignored{hint}")
    return warnings


DEFAULT_MODELS_BY_KEY = (
    ("ANTHROPIC_API_KEY", "anthropic:claude-sonnet-4-5"),
    ("OPENAI_API_KEY", "openai:gpt-4o-mini"),
)


def default_model_for(environ: Mapping[str, str]) -> str | None:
    """The model `spool dev` defaults to when `SPOOL_DEFAULT_MODEL` is unset: the provider
    whose API key is in the environment (Anthropic first), else None (`simulated`)."""
    if environ.get("SPOOL_DEFAULT_MODEL"):
        return None
    return next((model for key, model in DEFAULT_MODELS_BY_KEY if environ.get(key)), None)


def parse_api_keys(text: str) -> dict[str, str]:
    """`"acme:k1,globex:k2"` → `{"k1": "acme", "k2": "globex"}`."""
    keys: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        tenant, sep, key = pair.partition(":")
        if not sep or not tenant or not key:
            raise SettingsError(f"SPOOL_API_KEYS entries are tenant:key, got {pair!r}")
        if not TENANT_PATTERN.match(tenant):
            raise SettingsError(
                f"SPOOL_API_KEYS: a tenant is 1-64 of A-Z a-z 0-9 . _ -, got {tenant!r}"
            )
        keys[key] = tenant
    return keys
