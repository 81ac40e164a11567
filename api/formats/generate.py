"""`generate`: the chunks of a generation-API-style `POST /api/v1/generate/stream`:
`{type: "text", name: "output" | "thinking", content, done, index, is_final}` per
delta (`index` counts the job's chunks from 0; a part that ends gets a chunk with
`done: true`, the last output chunk also `is_final: true`), then one
`{final: true, usage, cost, warnings}` (with `error` when the job failed or was
cancelled)."""

import msgspec

from spool.api.formats.base import cost_of, json_frame
from spool.api.sse_encoder import Frame
from spool_client.events import (
    AnyEvent,
    Cost,
    ErrorInfo,
    JobCancelled,
    JobCompleted,
    JobFailed,
    TextDelta,
    ThinkingDelta,
    Usage,
)


class Chunk(msgspec.Struct):
    type: str
    name: str
    content: str
    done: bool
    index: int
    is_final: bool


class Final(msgspec.Struct, omit_defaults=True):
    final: bool
    usage: Usage
    cost: Cost | None
    warnings: list[str]
    error: ErrorInfo | None = None


class Generate:
    """One job's translator: the running chunk index, and whether thinking is open."""

    def __init__(self) -> None:
        self.index = 0
        self.thinking = False

    def feed(self, event: AnyEvent) -> list[Frame]:
        match event:
            case ThinkingDelta() if event.delta:
                self.thinking = True
                return [self._chunk("thinking", event.delta)]
            case TextDelta() if event.delta:
                return [*self._end_thinking(), self._chunk("output", event.delta)]
            case JobCompleted() | JobFailed() | JobCancelled():
                last = self._chunk("output", "", done=True, is_final=True)
                return [*self._end_thinking(), last, json_frame(_final(event))]
            case _:
                return []

    def _chunk(self, name: str, content: str, done: bool = False, is_final: bool = False) -> Frame:
        chunk = Chunk("text", name, content, done, self.index, is_final)
        self.index += 1
        return json_frame(chunk)

    def _end_thinking(self) -> list[Frame]:
        if not self.thinking:
            return []
        self.thinking = False
        return [self._chunk("thinking", "", done=True)]


def _final(event: JobCompleted | JobFailed | JobCancelled) -> Final:
    match event:
        case JobCompleted():
            return Final(True, event.usage, event.cost, event.warnings)
        case JobFailed():
            return Final(True, event.usage, cost_of(event), [], event.error)
        case JobCancelled():
            cancelled = ErrorInfo(code="cancelled", message="The job was cancelled.")
            return Final(True, event.usage, cost_of(event), [], cancelled)
