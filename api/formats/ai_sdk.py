"""`ai-sdk`: the Vercel AI SDK's UI message stream, protocol v1 (what `useChat` reads).

Chunk types and rules as the `ai` package (7.x) defines them in `ui-message-chunks`
and enforces them in `process-ui-message-stream`: a `text-delta` needs the `text-start`
of its id first (same for reasoning), `tool-output-*` needs the tool's input chunk, and
a response ends with `finish` (or `error`) and `data: [DONE]`.

One job is one assistant message, `start` carrying the job id as `messageId`. The whole
attempt is one AI SDK step (`start-step` ... `finish-step`): when a worker is lost and
the job starts over (`job.retrying`), `reset-step` drops everything the void attempt
showed, exactly as the contract voids that text. Tools run on the server, so their
chunks say `providerExecuted` (the client must not run them itself). Approvals are not
sent (the AI SDK would answer them with a new chat request; approve through Spool's
approvals route), nor `session.*` events.
"""

from typing import Any

import msgspec

from spool.api.formats.base import DONE, json_frame
from spool.api.sse_encoder import Frame
from spool_client.events import (
    AnyEvent,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobQueued,
    JobRetrying,
    JobStarted,
    StepFinished,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolResult,
)

HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}

FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool-calls"}


class Chunk(msgspec.Struct, tag_field="type", rename="camel"):
    pass


class Start(Chunk, tag="start"):
    message_id: str


class StartStep(Chunk, tag="start-step"):
    pass


class FinishStep(Chunk, tag="finish-step"):
    pass


class ResetStep(Chunk, tag="reset-step"):
    pass


class PartStart(Chunk):
    id: str


class PartDelta(Chunk):
    id: str
    delta: str


class TextStart(PartStart, tag="text-start"):
    pass


class TextDeltaChunk(PartDelta, tag="text-delta"):
    pass


class TextEnd(PartStart, tag="text-end"):
    pass


class ReasoningStart(PartStart, tag="reasoning-start"):
    pass


class ReasoningDelta(PartDelta, tag="reasoning-delta"):
    pass


class ReasoningEnd(PartStart, tag="reasoning-end"):
    pass


class ToolInputStart(Chunk, tag="tool-input-start"):
    tool_call_id: str
    tool_name: str
    provider_executed: bool = True


class ToolInputDelta(Chunk, tag="tool-input-delta"):
    tool_call_id: str
    input_text_delta: str


class ToolInputAvailable(Chunk, tag="tool-input-available"):
    tool_call_id: str
    tool_name: str
    input: dict[str, Any]
    provider_executed: bool = True


class ToolOutputAvailable(Chunk, tag="tool-output-available"):
    tool_call_id: str
    output: str
    provider_executed: bool = True


class ToolOutputError(Chunk, tag="tool-output-error"):
    tool_call_id: str
    error_text: str
    provider_executed: bool = True


class Finish(Chunk, tag="finish"):
    finish_reason: str


class Error(Chunk, tag="error"):
    error_text: str


class Abort(Chunk, tag="abort"):
    reason: str


class AiSdk:
    """One job's translator. State: has `start` gone out, is a step open, which text or
    reasoning part is open, and how many parts there were (part ids are `text-<n>`)."""

    def __init__(self) -> None:
        self.started = False
        self.in_step = False
        self.text: str | None = None
        self.reasoning: str | None = None
        self.parts = 0
        self.calls: set[str] = set()  # tool calls whose input streams (`tool-input-start` sent)

    def feed(self, event: AnyEvent) -> list[Frame]:
        match event:
            case JobQueued():
                return self._open(event.job_id, step=False)
            case JobStarted():
                return self._open(event.job_id)
            case TextDelta() | ThinkingDelta():
                return self._delta(event) if event.delta else []
            case ToolCallDelta():
                return self._tool_delta(event)
            case ToolCall():
                return [
                    *self._open(event.job_id),
                    *self._close_parts(),
                    _f(ToolInputAvailable(event.call_id, event.name, event.arguments)),
                ]
            case ToolResult():
                out = self._open(event.job_id)
                if event.is_error:
                    return [*out, _f(ToolOutputError(event.call_id, event.output))]
                return [*out, _f(ToolOutputAvailable(event.call_id, event.output))]
            case StepFinished():
                return self._close_parts()
            case JobRetrying():
                self.calls.clear()  # `reset-step` drops the SDK's partial tool calls too
                return self._close_parts() + ([_f(ResetStep())] if self.in_step else [])
            case JobCompleted() | JobFailed() | JobCancelled():
                return self._end(event)
            case _:
                return []

    def _open(self, job_id: str, step: bool = True) -> list[Frame]:
        """`start` the first time; `start-step` once a worker runs the job (`step`)."""
        out = []
        if not self.started:
            self.started = True
            out.append(_f(Start(job_id)))
        if step and not self.in_step:
            self.in_step = True
            out.append(_f(StartStep()))
        return out

    def _delta(self, event: TextDelta | ThinkingDelta) -> list[Frame]:
        out = self._open(event.job_id)
        if isinstance(event, TextDelta):
            if self.reasoning is not None:
                out += self._close_parts()
            if self.text is None:
                self.text = self._part_id("text")
                out.append(_f(TextStart(self.text)))
            out.append(_f(TextDeltaChunk(self.text, event.delta)))
            return out
        if self.text is not None:
            out += self._close_parts()
        if self.reasoning is None:
            self.reasoning = self._part_id("reasoning")
            out.append(_f(ReasoningStart(self.reasoning)))
        out.append(_f(ReasoningDelta(self.reasoning, event.delta)))
        return out

    def _tool_delta(self, event: ToolCallDelta) -> list[Frame]:
        out = [*self._open(event.job_id), *self._close_parts()]
        if event.call_id not in self.calls:
            self.calls.add(event.call_id)
            out.append(_f(ToolInputStart(event.call_id, event.name or "tool")))
        if event.arguments_delta:
            out.append(_f(ToolInputDelta(event.call_id, event.arguments_delta)))
        return out

    def _part_id(self, kind: str) -> str:
        self.parts += 1
        return f"{kind}-{self.parts}"

    def _close_parts(self) -> list[Frame]:
        out = []
        if self.reasoning is not None:
            out.append(_f(ReasoningEnd(self.reasoning)))
            self.reasoning = None
        if self.text is not None:
            out.append(_f(TextEnd(self.text)))
            self.text = None
        return out

    def _end(self, event: JobCompleted | JobFailed | JobCancelled) -> list[Frame]:
        out = [*self._open(event.job_id, step=False), *self._close_parts()]
        if self.in_step:
            out.append(_f(FinishStep()))
            self.in_step = False
        match event:
            case JobCompleted():
                out.append(_f(Finish(FINISH_REASONS.get(event.finish_reason, "other"))))
            case JobFailed():
                out.append(_f(Error(event.error.message)))
            case JobCancelled():
                out += [_f(Abort("cancelled")), _f(Finish("other"))]
        return [*out, DONE]


def _f(chunk: Chunk) -> Frame:
    return json_frame(chunk)
