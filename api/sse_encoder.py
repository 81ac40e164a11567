"""The one SSE frame encoder: every frame Spool sends, in every format, is built here.

Each wire format (`spool.api.formats`) is a pure function from an event to this
encoder's input, a `Frame` (event name and data); the response attaches the stream
entry's `id:` when it encodes the frames. Data that holds line breaks becomes several
`data:` lines, which an SSE reader joins back with `\\n`.
"""

from typing import NamedTuple

_BREAKS = (b"\r\n", b"\r")


class Frame(NamedTuple):
    """One SSE message as a format produces it: `data`, and an optional `event:` name."""

    data: bytes
    event: bytes | None = None


def encode(data: bytes, *, id: bytes | None = None, event: bytes | None = None) -> bytes:
    """`id:`, `event:` and `data:` lines, then the blank line that ends the message."""
    head = b""
    if id is not None:
        head = b"id: %s\n" % id
    if event is not None:
        head += b"event: %s\n" % event
    if b"\n" in data or b"\r" in data:
        for brk in _BREAKS:
            data = data.replace(brk, b"\n")
        data = data.replace(b"\n", b"\ndata: ")
    return b"%sdata: %s\n\n" % (head, data)


def entry(id: bytes, event: bytes, data: bytes) -> bytes:
    """`encode` of a stream entry's frame (every frame the hub sends): one formatting step
    when the data is one line, as an event's JSON is."""
    if b"\n" in data or b"\r" in data:
        return encode(data, id=id, event=event)
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (id, event, data)


def comment(text: bytes) -> bytes:
    """A comment line (`: ping`): readers ignore it; it keeps proxies from timing out."""
    return b": %s\n\n" % text


def comment_line(text: bytes) -> bytes:
    """A comment line alone, with no blank line after it: it ends no message, so even a
    reader that dispatches an empty message on a blank line after an `id:` (the `openai`
    SDK's decoder does, then fails to parse it) sees nothing. The other formats' pings."""
    return b": %s\n" % text


def retry(ms: int) -> bytes:
    """The reconnection delay a browser's EventSource should use."""
    return b"retry: %d\n\n" % ms
