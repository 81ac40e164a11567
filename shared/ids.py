"""Identifiers: job and session ids, and Redis stream entry ids (`<ms>-<seq>`)."""

import re
import secrets
import time

StreamId = tuple[int, int]

_STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
ZERO: StreamId = (0, 0)


def new_job_id() -> str:
    return f"job-{secrets.token_hex(10)}"


def new_session_id() -> str:
    return f"ses-{secrets.token_hex(10)}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_stream_id(text: str | bytes) -> StreamId | None:
    """`"1700000000000-3"` → `(1700000000000, 3)`; anything else → None."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    match = _STREAM_ID.match(text)
    if match is None:
        return None
    return int(match[1]), int(match[2])


def format_stream_id(sid: StreamId) -> str:
    return f"{sid[0]}-{sid[1]}"


def before(sid: StreamId) -> StreamId:
    """The greatest id strictly smaller than `sid`, so that reading *after* it includes `sid`."""
    ms, seq = sid
    if seq > 0:
        return ms, seq - 1
    if ms > 0:
        return ms - 1, 2**64 - 1
    return ZERO
