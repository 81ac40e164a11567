"""The provider interface: a model request in, a stream of provider events out.

A provider turns its wire format into these few events; the agent loop turns them into
Spool's public events. Keeping the two apart lets the loop run without a network.
"""

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import msgspec

from spool.shared.jobs import Message
from spool_client.events import FinishReason, Usage


class ToolSpec(msgspec.Struct, kw_only=True):
    """A tool as the model sees it: name, description and JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = {}


class ModelRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[Message]
    system: str | None = None
    parameters: dict[str, Any] = {}
    tools: list[ToolSpec] = []
    step: int = 0

    @property
    def model_name(self) -> str:
        """The model without its provider prefix: `claude-x` for `anthropic:claude-x`."""
        return self.model.partition(":")[2] or self.model


class TextChunk(msgspec.Struct):
    """A piece of the answer; `usage`, when given, is the call's usage including it (a
    provider that knows it per chunk saves an event per token: the simulated one)."""

    text: str
    usage: "UsageReport | None" = None


class ThinkingChunk(msgspec.Struct):
    text: str
    usage: "UsageReport | None" = None


class ThinkingBlock(msgspec.Struct):
    """A finished reasoning block with its signature: kept in the conversation, not streamed."""

    text: str
    signature: str = ""


class ToolCallChunk(msgspec.Struct):
    """A piece of a tool call's arguments JSON text, as streamed (the complete call follows
    as a `ToolCallRequest` with the same `call_id`)."""

    call_id: str
    name: str
    arguments_delta: str


class ToolCallRequest(msgspec.Struct):
    call_id: str
    name: str
    arguments: dict[str, Any]


class UsageReport(msgspec.Struct):
    """Usage of this model call so far (cumulative: the last report wins)."""

    usage: Usage
    cache_read: int = 0
    cache_write: int = 0


class Finished(msgspec.Struct):
    reason: FinishReason
    stop_reason: str | None = None  # the provider's own word (`end_turn`, `length`, ...)


Chunk = TextChunk | ThinkingChunk
Sink = Callable[[Chunk], None]


class Paced:
    """The provider's next chunks come through the process's scheduler instead of its
    stream (`worker/providers/pacing.py`; the simulated model, in the worker): the loop
    awaits `run(sink, room)`, which calls `sink` with each chunk at its due time while
    `room()` says the job can take one; the loop handles each as it would the event.
    Such chunks carry no usage: `usage()` is the call's usage so far, which the loop reads
    when the run ends (done, failed, timed out or cancelled)."""

    def __init__(
        self,
        run: Callable[[Sink, Callable[[], bool]], Awaitable[None]],
        usage: Callable[[], "UsageReport"],
    ) -> None:
        self.run = run
        self.usage = usage


ProviderEvent = (
    TextChunk
    | ThinkingChunk
    | ThinkingBlock
    | ToolCallChunk
    | ToolCallRequest
    | UsageReport
    | Finished
    | Paced
)


def usage_of(input_tokens: int, output_tokens: int) -> Usage:
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


class Provider(Protocol):
    def stream(self, request: ModelRequest) -> AsyncGenerator[ProviderEvent, None]:
        """Stream one model call. Raises `worker.errors.ProviderError` on failure."""
        ...


Raw = TypeVar("Raw", contravariant=True)
RawOut = TypeVar("RawOut", covariant=True)


class Snapshot(Protocol[Raw]):
    """A pure accumulator of one provider's raw stream events."""

    def handle(self, raw: Raw) -> list[ProviderEvent]: ...

    def finish(self) -> list[ProviderEvent]: ...


class SDKStream(Protocol[RawOut]):
    """What the `anthropic` and `openai` SDKs' `AsyncStream` offer."""

    def __aiter__(self) -> AsyncIterator[RawOut]: ...

    async def close(self) -> None: ...


async def replay(stream: SDKStream[Any], snapshot: Snapshot[Any]) -> AsyncGenerator[ProviderEvent]:
    """The events `snapshot` makes of `stream`; the HTTP stream is closed however this ends."""
    try:
        async for raw in stream:
            for event in snapshot.handle(raw):
                yield event
    finally:
        await stream.close()
    for event in snapshot.finish():
        yield event
