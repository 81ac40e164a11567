"""`text`: `data: <text delta>` per chunk, then `data: [DONE]` (lauren-ai-style clients).
A failed job sends `event: error` (JSON `{code, message}`) before `[DONE]`.

`Text` is also the plain-text translator behind `token`, which differs only in the
`event:` names of its frames."""

from spool.api.formats.base import DONE, json_frame
from spool.api.sse_encoder import Frame
from spool_client.events import AnyEvent, JobCancelled, JobCompleted, JobFailed, TextDelta


class Text:
    def __init__(self, delta_event: bytes | None = None, done: Frame = DONE) -> None:
        self._delta_event = delta_event
        self._done = done

    def feed(self, event: AnyEvent) -> list[Frame]:
        match event:
            case TextDelta() if event.delta:
                return [Frame(event.delta.encode(), self._delta_event)]
            case JobFailed():
                return [json_frame(event.error, b"error"), self._done]
            case JobCompleted() | JobCancelled():
                return [self._done]
            case _:
                return []
