"""`text`: `data: <text delta>` per chunk, then `data: [DONE]` (lauren-ai-style clients).
A failed job sends `event: error` (JSON `{code, message}`) before `[DONE]`."""

from spool.api.formats.base import DONE, json_frame
from spool.api.sse_encoder import Frame
from spool_client.events import AnyEvent, JobCancelled, JobCompleted, JobFailed, TextDelta


class Text:
    def feed(self, event: AnyEvent) -> list[Frame]:
        match event:
            case TextDelta() if event.delta:
                return [Frame(event.delta.encode())]
            case JobFailed():
                return [json_frame(event.error, b"error"), DONE]
            case JobCompleted() | JobCancelled():
                return [DONE]
            case _:
                return []
