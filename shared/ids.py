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


def redis_stream_id(raw: bytes | str) -> StreamId:
    """An id as Redis wrote it (`XADD`'s reply, a notice): always well formed, so it is
    split, not matched (`parse_stream_id` is for ids from clients)."""
    if isinstance(raw, bytes):
        ms, _, seq = raw.partition(b"-")
        return int(ms), int(seq)
    text_ms, _, text_seq = raw.partition("-")
    return int(text_ms), int(text_seq)


def before(sid: StreamId) -> StreamId:
    """The greatest id strictly smaller than `sid`, so that reading *after* it includes `sid`."""
    ms, seq = sid
    if seq > 0:
        return ms, seq - 1
    if ms > 0:
        return ms - 1, 2**64 - 1
    return ZERO
