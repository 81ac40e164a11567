"""Redis stream entry ids (`<ms>-<seq>`), the cursors of contract §3."""

import re

StreamId = tuple[int, int]

_STREAM_ID = re.compile(r"^([0-9]{1,20})-([0-9]{1,20})\Z")  # `\Z`: no trailing newline
ZERO: StreamId = (0, 0)
MAX_PART = 2**64 - 1  # Redis stream ids are two unsigned 64-bit numbers


def parse_stream_id(text: str | bytes) -> StreamId | None:
    """`"1700000000000-3"` → `(1700000000000, 3)`; anything else (a part above 2^64-1
    included) → None."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    match = _STREAM_ID.match(text)
    if match is None:
        return None
    ms, seq = int(match[1]), int(match[2])
    if ms > MAX_PART or seq > MAX_PART:
        return None
    return ms, seq


def format_stream_id(sid: StreamId) -> str:
    return f"{sid[0]}-{sid[1]}"
