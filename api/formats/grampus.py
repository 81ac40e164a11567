"""`grampus`: the frames of a grampus-style `POST /stream`: every `data:` JSON has
`delta`, `is_final`, `step` and `tool_call`; the last one (`is_final: true`) adds
`token_usage {input_tokens, output_tokens, total_tokens, cost_usd}` and
`finish_reason` (`stop`, `length`, `tool_calls`, `error` with an `error` object, or
`cancelled`). A tool's result comes as `tool_result` on a frame of its own."""

from typing import Any

import msgspec

from spool.api.formats.base import cost_total, json_frame
from spool.api.sse_encoder import Frame
from spool_client.events import (
    AnyEvent,
    ErrorInfo,
    JobCancelled,
    JobCompleted,
    JobFailed,
    StepStarted,
    TextDelta,
    ToolCall,
    ToolResult,
)


class ToolCallOut(msgspec.Struct):
    id: str
    name: str
    arguments: dict[str, Any]


class ToolResultOut(msgspec.Struct):
    id: str
    name: str
    output: str
    is_error: bool


class TokenUsage(msgspec.Struct):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float | None


class Chunk(msgspec.Struct, omit_defaults=True):
    delta: str
    is_final: bool
    step: int
    tool_call: ToolCallOut | None  # no default: always sent, null when there is none
    tool_result: ToolResultOut | None = None
    token_usage: TokenUsage | None = None
    finish_reason: str | None = None
    error: ErrorInfo | None = None


class Grampus:
    """One job's translator; remembers the step, which the final frame repeats."""

    def __init__(self) -> None:
        self.step = 0

    def feed(self, event: AnyEvent) -> list[Frame]:
        match event:
            case StepStarted():
                self.step = event.step
                return []
            case TextDelta() if event.delta:
                return [json_frame(Chunk(event.delta, False, event.step, None))]
            case ToolCall():
                call = ToolCallOut(event.call_id, event.name, event.arguments)
                return [json_frame(Chunk("", False, event.step, call))]
            case ToolResult():
                result = ToolResultOut(event.call_id, event.name, event.output, event.is_error)
                return [json_frame(Chunk("", False, event.step, None, tool_result=result))]
            case JobCompleted() | JobFailed() | JobCancelled():
                return [json_frame(self._final(event))]
            case _:
                return []

    def _final(self, event: JobCompleted | JobFailed | JobCancelled) -> Chunk:
        usage = event.usage
        token_usage = TokenUsage(
            usage.input_tokens, usage.output_tokens, usage.total_tokens, cost_total(event)
        )
        chunk = Chunk("", True, self.step, None, token_usage=token_usage)
        match event:
            case JobCompleted():
                chunk.finish_reason = event.finish_reason
            case JobFailed():
                chunk.finish_reason, chunk.error = "error", event.error
            case JobCancelled():
                chunk.finish_reason = "cancelled"
        return chunk
