"""OpenAI Chat Completions wire format, without transport: request building and a pure
accumulator of stream chunks (as the SDK's `ChatCompletionStreamState.handle_chunk`).

Chunks carry `choices[0].delta.content`, `delta.tool_calls` fragments (id and name in the
first fragment of an index, `function.arguments` spread over the following ones) and a
`finish_reason`; with `stream_options.include_usage` a last chunk with empty `choices`
carries the usage. OpenAI-compatible servers (vLLM, Ollama, ...) add
`delta.reasoning_content` for reasoning models.
"""

import json
from typing import Any

from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from spool.shared.jobs import Message
from spool.worker.errors import ProviderError
from spool.worker.providers.base import (
    Finished,
    ModelRequest,
    ProviderEvent,
    TextChunk,
    ThinkingChunk,
    ToolCallChunk,
    ToolCallRequest,
    UsageReport,
    usage_of,
)
from spool_client.events import FinishReason

PASSED_PARAMETERS = ("temperature", "top_p", "max_tokens", "stop", "seed", "reasoning_effort")
FINISH_REASONS: dict[str, FinishReason] = {"tool_calls": "tool_calls", "length": "length"}


def request_body(request: ModelRequest) -> dict[str, Any]:
    params = request.parameters
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for m in request.messages:
        messages += wire_messages(m)
    body: dict[str, Any] = {"model": request.model_name, "messages": messages}
    body |= {k: params[k] for k in PASSED_PARAMETERS if k in params}
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in request.tools
        ]
    return body


def wire_messages(m: Message) -> list[dict[str, Any]]:
    """One turn as Chat Completions messages (tool results are one `tool` message each)."""
    out: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": r.call_id, "content": r.output} for r in m.tool_results
    ]
    if m.role == "assistant" and m.tool_calls:
        calls = [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in m.tool_calls
        ]
        out.append({"role": "assistant", "content": m.content or None, "tool_calls": calls})
    elif m.content or not m.tool_results:
        out.append({"role": m.role, "content": m.content})
    return out


def usage_report(u: CompletionUsage) -> UsageReport:
    details = u.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    return UsageReport(usage_of(u.prompt_tokens, u.completion_tokens), cache_read=cached)


def parse_arguments(name: str, raw: str) -> dict[str, Any]:
    try:
        arguments = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise ProviderError("provider_error", f"arguments of {name} are not JSON: {exc}") from exc
    if not isinstance(arguments, dict):
        raise ProviderError("provider_error", f"arguments of {name} are not an object")
    return arguments


class _Call:
    def __init__(self) -> None:
        self.call_id = ""
        self.name = ""
        self.arguments: list[str] = []


class CompletionSnapshot:
    """One streamed completion; `handle` returns the events each chunk adds."""

    def __init__(self) -> None:
        self.calls: dict[int, _Call] = {}
        self.finish_reason: str | None = None

    def handle(self, chunk: ChatCompletionChunk) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        for choice in chunk.choices[:1]:
            delta = choice.delta
            reasoning = getattr(delta, "reasoning_content", None)
            if isinstance(reasoning, str) and reasoning:
                events.append(ThinkingChunk(reasoning))
            if delta.content:
                events.append(TextChunk(delta.content))
            for fragment in delta.tool_calls or []:
                events += self._fragment(fragment)
            self.finish_reason = choice.finish_reason or self.finish_reason
        if chunk.usage is not None:
            events.append(usage_report(chunk.usage))
        return events

    def _fragment(self, fragment: ChoiceDeltaToolCall) -> list[ProviderEvent]:
        call = self.calls.setdefault(fragment.index, _Call())
        call.call_id = fragment.id or call.call_id
        if fragment.function is None:
            return []
        call.name = fragment.function.name or call.name
        piece = fragment.function.arguments or ""
        call.arguments.append(piece)
        if not piece:
            return []
        return [ToolCallChunk(call.call_id or f"call_{fragment.index}", call.name, piece)]

    def finish(self) -> list[ProviderEvent]:
        if self.finish_reason is None:
            raise ProviderError(
                "provider_disconnected", "the stream ended without a finish_reason", retryable=True
            )
        events: list[ProviderEvent] = [
            ToolCallRequest(
                c.call_id or f"call_{i}", c.name, parse_arguments(c.name, "".join(c.arguments))
            )
            for i, c in sorted(self.calls.items())
        ]
        reason = "tool_calls" if self.calls else self.finish_reason
        events.append(Finished(FINISH_REASONS.get(reason, "stop"), self.finish_reason))
        return events


def completion_events(completion: ChatCompletion) -> list[ProviderEvent]:
    """The events of a complete (non-streamed) completion: the degraded path."""
    events: list[ProviderEvent] = []
    reason: str = "stop"
    for choice in completion.choices[:1]:
        if choice.message.content:
            events.append(TextChunk(choice.message.content))
        for i, call in enumerate(choice.message.tool_calls or []):
            if call.type == "function":
                args = parse_arguments(call.function.name, call.function.arguments)
                events.append(ToolCallRequest(call.id or f"call_{i}", call.function.name, args))
        reason = choice.finish_reason
    if completion.usage is not None:
        events.append(usage_report(completion.usage))
    events.append(Finished(FINISH_REASONS.get(reason, "stop"), reason))
    return events
