"""Anthropic Messages wire format, without transport: request building and a pure
accumulator of raw stream events (as the SDK's `accumulate_event` keeps them apart).

Stream: `message_start` (usage with input tokens), per content block `content_block_start`,
`content_block_delta`s (`text_delta`, `thinking_delta`, `signature_delta`,
`input_json_delta`), `content_block_stop`; then `message_delta` (stop reason, cumulative
usage) and `message_stop`.
"""

import json
from typing import Any

from anthropic.types import Message as AnthropicMessage
from anthropic.types import MessageDeltaUsage, RawMessageStreamEvent
from anthropic.types import Usage as AnthropicUsage

from spool.shared.jobs import Message
from spool.worker.errors import ProviderError
from spool.worker.providers.base import (
    Finished,
    ModelRequest,
    ProviderEvent,
    TextChunk,
    ThinkingBlock,
    ThinkingChunk,
    ToolCallChunk,
    ToolCallRequest,
    UsageReport,
    usage_of,
)
from spool_client.events import FinishReason

DEFAULT_MAX_TOKENS = 4096
PASSED_PARAMETERS = ("temperature", "top_p", "top_k", "stop_sequences", "metadata")
STOP_REASONS: dict[str, FinishReason] = {"tool_use": "tool_calls", "max_tokens": "length"}


def request_body(request: ModelRequest) -> dict[str, Any]:
    params = request.parameters
    body: dict[str, Any] = {
        "model": request.model_name,
        "max_tokens": int(params.get("max_tokens", DEFAULT_MAX_TOKENS)),
        "messages": [wire_message(m) for m in request.messages],
    }
    body |= {k: params[k] for k in PASSED_PARAMETERS if k in params}
    thinking = params.get("thinking")
    if isinstance(thinking, int) and not isinstance(thinking, bool):
        body["thinking"] = {"type": "enabled", "budget_tokens": thinking}
    elif isinstance(thinking, dict):
        body["thinking"] = thinking
    if request.system:
        body["system"] = request.system
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
    return body


def wire_message(m: Message) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": t.text, "signature": t.signature} for t in m.thinking
    ]
    blocks += [
        {
            "type": "tool_result",
            "tool_use_id": r.call_id,
            "content": r.output,
            "is_error": r.is_error,
        }
        for r in m.tool_results
    ]
    if m.content:
        blocks.append({"type": "text", "text": m.content})
    blocks += [
        {"type": "tool_use", "id": c.call_id, "name": c.name, "input": c.arguments}
        for c in m.tool_calls
    ]
    return {"role": m.role, "content": blocks}


def _usage(u: AnthropicUsage | MessageDeltaUsage, base: UsageReport | None) -> UsageReport:
    """A cumulative report; fields a `message_delta` leaves out keep their earlier value."""
    prev = base or UsageReport(usage_of(0, 0))
    cache_read = u.cache_read_input_tokens
    cache_write = u.cache_creation_input_tokens
    cache_read = prev.cache_read if cache_read is None else cache_read
    cache_write = prev.cache_write if cache_write is None else cache_write
    uncached = u.input_tokens
    if uncached is None:
        uncached = prev.usage.input_tokens - prev.cache_read - prev.cache_write
    return UsageReport(
        usage_of(uncached + cache_read + cache_write, u.output_tokens or 0),
        cache_read=cache_read,
        cache_write=cache_write,
    )


class _Block:
    def __init__(self, kind: str, call_id: str = "", name: str = "") -> None:
        self.kind = kind
        self.call_id = call_id
        self.name = name
        self.parts: list[str] = []
        self.signature = ""


class MessageSnapshot:
    """One assistant message being streamed; `handle` returns the events each raw event adds."""

    def __init__(self) -> None:
        self.blocks: dict[int, _Block] = {}
        self.usage: UsageReport | None = None
        self.stop_reason: str | None = None
        self.stopped = False

    def handle(self, event: RawMessageStreamEvent) -> list[ProviderEvent]:
        match event.type:
            case "message_start":
                self.usage = _usage(event.message.usage, None)
                return [self.usage]
            case "content_block_start":
                block = event.content_block
                if block.type == "tool_use":
                    self.blocks[event.index] = _Block("tool_use", block.id, block.name)
                else:
                    self.blocks[event.index] = _Block(block.type)
            case "content_block_delta":
                return self._delta(event.index, event.delta)
            case "content_block_stop":
                return self._stop(event.index)
            case "message_delta":
                self.stop_reason = event.delta.stop_reason or self.stop_reason
                self.usage = _usage(event.usage, self.usage)
                return [self.usage]
            case "message_stop":
                self.stopped = True
        return []

    def _delta(self, index: int, delta: Any) -> list[ProviderEvent]:
        block = self.blocks.setdefault(index, _Block("text"))
        match delta.type:
            case "text_delta":
                block.parts.append(delta.text)
                return [TextChunk(delta.text)] if delta.text else []
            case "thinking_delta":
                block.parts.append(delta.thinking)
                return [ThinkingChunk(delta.thinking)] if delta.thinking else []
            case "signature_delta":
                block.signature += delta.signature
            case "input_json_delta":
                block.parts.append(delta.partial_json)
                if delta.partial_json:
                    return [ToolCallChunk(block.call_id, block.name, delta.partial_json)]
        return []

    def _stop(self, index: int) -> list[ProviderEvent]:
        block = self.blocks.get(index)
        if block is None:
            return []
        if block.kind == "thinking":
            return [ThinkingBlock("".join(block.parts), block.signature)]
        if block.kind != "tool_use":
            return []
        raw = "".join(block.parts) or "{}"
        try:
            arguments = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ProviderError("provider_error", f"tool input is not JSON: {exc}") from exc
        return [ToolCallRequest(block.call_id, block.name, arguments)]

    def finish(self) -> list[ProviderEvent]:
        if not self.stopped:
            raise ProviderError(
                "provider_disconnected", "the stream ended before message_stop", retryable=True
            )
        return [Finished(STOP_REASONS.get(self.stop_reason or "", "stop"), self.stop_reason)]


def message_events(message: AnthropicMessage) -> list[ProviderEvent]:
    """The events of a complete (non-streamed) message: the degraded path."""
    events: list[ProviderEvent] = []
    for block in message.content:
        if block.type == "text":
            events.append(TextChunk(block.text))
        elif block.type == "thinking":
            events += [
                ThinkingChunk(block.thinking),
                ThinkingBlock(block.thinking, block.signature),
            ]
        elif block.type == "tool_use":
            events.append(ToolCallRequest(block.id, block.name, dict(block.input)))
    events.append(_usage(message.usage, None))
    reason = message.stop_reason
    events.append(Finished(STOP_REASONS.get(reason or "", "stop"), reason))
    return events
