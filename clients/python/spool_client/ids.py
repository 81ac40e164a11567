"""Redis stream entry ids (`<ms>-<seq>`), the cursors of contract §3."""

import re

StreamId = tuple[int, int]

_STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
ZERO: StreamId = (0, 0)


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
