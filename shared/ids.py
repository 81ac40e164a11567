"""Identifiers: job and session ids; stream entry ids are `spool_client.ids` (the wire format)."""

import secrets
import time

from spool_client.ids import ZERO, StreamId, format_stream_id, parse_stream_id

__all__ = [
    "ZERO",
    "StreamId",
    "before",
    "format_stream_id",
    "new_job_id",
    "new_session_id",
    "now_ms",
    "parse_stream_id",
]


def new_job_id() -> str:
    return f"job-{secrets.token_hex(10)}"


def new_session_id() -> str:
    return f"ses-{secrets.token_hex(10)}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def before(sid: StreamId) -> StreamId:
    """The greatest id strictly smaller than `sid`, so that reading *after* it includes `sid`."""
    ms, seq = sid
    if seq > 0:
        return ms, seq - 1
    if ms > 0:
        return ms - 1, 2**64 - 1
    return ZERO
