"""Logging filters the API installs on uvicorn's loggers.

- `RedactTokens`: a browser's stream token travels in the URL (`?token=`, an
  EventSource cannot send headers); it never reaches the access log.
- `QuietStalledCutoffs`: when Spool cuts off a client that stopped reading
  (`api.sse.SseResponse`), uvicorn would log "ASGI callable returned without completing
  response" as an error; that is the intended outcome, so the line is dropped.
"""

import logging
import re

from spool.api.sse import stalled_cutoff

_TOKEN = re.compile(r"([?&]token=)[^&\s]*")


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


class QuietStalledCutoffs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (stalled_cutoff.get() and "without completing response" in record.getMessage())


def install() -> None:
    """Add the filters to uvicorn's loggers (after uvicorn configured logging)."""
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    logging.getLogger("uvicorn.error").addFilter(QuietStalledCutoffs())
