"""`token`: `event: token` frames whose data is the raw text; `event: done` at the end
(cogent-style SSE clients). A failed job sends `event: error` (JSON `{code, message}`)
before `done`. Text with line breaks spans several `data:` lines, which SSE readers join."""

from spool.api.formats.text import Text
from spool.api.sse_encoder import Frame

DONE = Frame(b"[DONE]", b"done")


class Token(Text):
    def __init__(self) -> None:
        super().__init__(b"token", DONE)
