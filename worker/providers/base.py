"""The provider interface: a model request in, a stream of provider events out.

A provider turns its wire format into these few events; the agent loop turns them into
Spool's public events. Keeping the two apart lets the loop run without a network.
"""

from collections.abc import AsyncIterator
from typing import Any, Protocol

import msgspec

from shared.events import FinishReason, Usage
from shared.jobs import Message


class ModelRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[Message]
    system: str | None = None
    parameters: dict[str, Any] = {}
    step: int = 0


class TextChunk(msgspec.Struct):
    text: str


class ThinkingChunk(msgspec.Struct):
    text: str


class ToolCallRequest(msgspec.Struct):
    call_id: str
    name: str
    arguments: dict[str, Any]


class UsageReport(msgspec.Struct):
    """Usage of this model call so far (cumulative: the last report wins)."""

    usage: Usage


class Finished(msgspec.Struct):
    reason: FinishReason


ProviderEvent = TextChunk | ThinkingChunk | ToolCallRequest | UsageReport | Finished


class Provider(Protocol):
    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        """Stream one model call. Raises `worker.errors.ProviderError` on failure."""
        ...
