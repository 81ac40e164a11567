"""`openai`: Chat Completions streaming chunks, as OpenAI's SDKs and stream readers expect.

A job is one completion, id `chatcmpl-<job id>`, `created` and `model` from its
`job.queued`: a role chunk, one `delta.content` chunk per text delta (thinking as
`delta.reasoning_content`, as OpenAI-compatible reasoning servers send it), a chunk
with the `finish_reason`, the usage chunk (`choices: []`) and `data: [DONE]`. A failed
job ends with `data: {"error": {...}}`, which the SDKs raise. Tool calls run inside
Spool, so they are not sent as `tool_calls` (the client must not run them); a job that
starts over after a worker loss cannot take back text this format already sent.
"""

import msgspec

from spool.api.formats.base import DONE, json_frame
from spool.api.sse_encoder import Frame
from spool_client.events import (
    AnyEvent,
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobQueued,
    TextDelta,
    ThinkingDelta,
    Usage,
)


class Delta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None


class ChunkChoice(msgspec.Struct):
    index: int
    delta: Delta
    finish_reason: str | None = None


class CompletionUsage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, usage: Usage) -> "CompletionUsage":
        return cls(usage.input_tokens, usage.output_tokens, usage.total_tokens)


class ChatCompletionChunk(msgspec.Struct, omit_defaults=True):
    id: str
    object: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None


class Message(msgspec.Struct):
    role: str
    content: str


class Choice(msgspec.Struct):
    index: int
    message: Message
    finish_reason: str


class ChatCompletion(msgspec.Struct):
    """The non-streamed answer of `POST /v1/chat/completions`."""

    id: str
    object: str
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage


class ErrorBody(msgspec.Struct):
    message: str
    type: str
    code: str


class ErrorFrame(msgspec.Struct):
    error: ErrorBody


def completion_id(job_id: str) -> str:
    return f"chatcmpl-{job_id}"


def finish_reason(event: JobCompleted | JobCancelled) -> str:
    return event.finish_reason if isinstance(event, JobCompleted) else "stop"


def completion(
    terminal: JobCompleted | JobCancelled, created_ms: int, model: str
) -> ChatCompletion:
    """The whole answer of a finished job, as one `chat.completion`."""
    message = Message("assistant", terminal.output_text)
    return ChatCompletion(
        id=completion_id(terminal.job_id),
        object="chat.completion",
        created=created_ms // 1000,
        model=model,
        choices=[Choice(0, message, finish_reason(terminal))],
        usage=CompletionUsage.of(terminal.usage),
    )


class OpenAI:
    """One job's translator; remembers the completion's `created` and `model`."""

    def __init__(self, include_usage: bool = True) -> None:
        self.include_usage = include_usage
        self.opened = False
        self.created = 0
        self.model = ""

    def feed(self, event: AnyEvent) -> list[Frame]:
        match event:
            case JobQueued():
                self.model = event.model
                return self._open(event)
            case TextDelta():
                return [*self._open(event), self._chunk(event, Delta(content=event.delta))]
            case ThinkingDelta():
                delta = Delta(reasoning_content=event.delta)
                return [*self._open(event), self._chunk(event, delta)]
            case JobCompleted() | JobCancelled():
                return self._finish(event)
            case JobFailed():
                body = ErrorBody(event.error.message, "job_failed", event.error.code)
                return [*self._open(event), json_frame(ErrorFrame(body)), DONE]
            case _:
                return []

    def _open(self, event: Event) -> list[Frame]:
        """The role chunk, once: at `job.queued` (or the first event seen, if that is gone)."""
        if self.opened:
            return []
        self.opened = True
        self.created = event.ts // 1000
        return [self._chunk(event, Delta(role="assistant", content=""))]

    def _chunk(
        self,
        event: Event,
        delta: Delta,
        reason: str | None = None,
        usage: CompletionUsage | None = None,
    ) -> Frame:
        choices = [] if usage is not None else [ChunkChoice(0, delta, reason)]
        chunk = ChatCompletionChunk(
            id=completion_id(event.job_id),
            object="chat.completion.chunk",
            created=self.created,
            model=self.model,
            choices=choices,
            usage=usage,
        )
        return json_frame(chunk)

    def _finish(self, event: JobCompleted | JobCancelled) -> list[Frame]:
        out = [*self._open(event), self._chunk(event, Delta(), finish_reason(event))]
        if self.include_usage:
            out.append(self._chunk(event, Delta(), usage=CompletionUsage.of(event.usage)))
        return [*out, DONE]
