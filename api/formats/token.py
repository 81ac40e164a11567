"""`token`: `event: token` frames whose data is the raw text; `event: done` at the end
(cogent-style SSE clients). A failed job sends `event: error` (JSON `{code, message}`)
before `done`. Text with line breaks spans several `data:` lines, which SSE readers join."""

from spool.api.formats.base import json_frame
from spool.api.sse_encoder import Frame
from spool_client.events import AnyEvent, JobCancelled, JobCompleted, JobFailed, TextDelta

DONE = Frame(b"[DONE]", b"done")


class Token:
    def feed(self, event: AnyEvent) -> list[Frame]:
        match event:
            case TextDelta() if event.delta:
                return [Frame(event.delta.encode(), b"token")]
            case JobFailed():
                return [json_frame(event.error, b"error"), DONE]
            case JobCompleted() | JobCancelled():
                return [DONE]
            case _:
                return []
