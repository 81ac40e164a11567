"""Process logging from the settings: `SPOOL_LOG_LEVEL`, and `SPOOL_LOG_FORMAT` `text` or `json`.

In `json`, every line is one JSON object: `ts`, `level`, `logger`, `message`, and
`job_id` / `session_id` where known: from the record's `extra`, else from the
`log_context()` the code around it runs in (the worker sets it for each job).
"""

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

from spool.shared.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("job_id", "session_id")

_context: ContextVar[dict[str, str]] = ContextVar("spool_log_context")


@contextlib.contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Log records made inside (in this task and the tasks it starts) carry these fields."""
    token = _context.set({**_context.get({}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _context.get({})
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None) or context.get(key)
            if value:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(settings: Settings) -> None:
    """Root logging for a Spool process."""
    handler = logging.StreamHandler()
    formatter = JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
