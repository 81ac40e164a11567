"""The `simulated` model (contract §6): a real provider that streams text at a set pace.

It serves demos, load tests and benchmarks without keys or network. Tokens are
whitespace tokens: `"Hello, world!\\n"` is two tokens, `"Hello, "` and `"world!\\n"`.
"""

import asyncio
import hashlib
import re
from collections.abc import AsyncGenerator, Iterator

import msgspec

from spool.shared.jobs import Message, SimulatedParameters
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
)
from spool.worker.providers.pacing import pacer
from spool_client.events import FinishReason, Usage

ARGUMENTS_PIECE = 16  # characters of a tool call's arguments per `tool.call.delta`
_TOKEN = re.compile(r"\s*\S+\s*|\s+")
_WORDS = [
    *("stream", "durable", "resume", "event", "token", "worker", "queue", "session"),
    *("redis", "cursor", "answer", "model", "reply", "chunk", "replay", "browser"),
    *("network", "socket", "deploy", "order", "latency", "survive", "reconnect"),
]


def tokenize(text: str) -> list[str]:
    """Whitespace tokens whose concatenation is exactly `text`."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(text.split())


def default_text(messages: list[Message]) -> str:
    """A deterministic passage derived from the last user turn."""
    prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
    digest = hashlib.sha256(prompt.encode()).digest()
    words = [_WORDS[b % len(_WORDS)] for b in digest + digest[:8]]
    return f"You said: {prompt.strip()[:200]}\n" + " ".join(words).capitalize() + "."


def json_pieces(arguments: dict[str, object], size: int = ARGUMENTS_PIECE) -> list[str]:
    """The arguments' JSON text in pieces of `size` characters, as a model streams them."""
    text = msgspec.json.encode(arguments).decode()
    return [text[i : i + size] for i in range(0, len(text), size)]


def _chunks(tokens: list[str], size: int) -> Iterator[tuple[int, str]]:
    for i in range(0, len(tokens), size):
        piece = tokens[i : i + size]
        yield sum(1 for t in piece if not t.isspace()), "".join(piece)


def _usage(input_tokens: int, output_tokens: int) -> Usage:
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


class SimulatedProvider:
    async def stream(self, request: ModelRequest) -> AsyncGenerator[ProviderEvent, None]:
        params = msgspec.convert(request.parameters, SimulatedParameters)
        text = params.text if params.text is not None else default_text(request.messages)
        prompt = [m.content for m in request.messages] + [request.system or ""]
        usage = Usage(input_tokens=sum(count_tokens(p) for p in prompt))
        yield UsageReport(usage)  # input tokens are known up front, as with real providers
        loop, pace = asyncio.get_running_loop(), pacer()
        due = loop.time() + params.ttft_ms / 1000
        spent = 0
        parts = [("thinking", tokenize(params.thinking or "")), ("text", tokenize(text))]
        for kind, tokens in parts:
            for n, piece in _chunks(tokens, params.chunk_tokens):
                if params.fail_after_tokens is not None and spent >= params.fail_after_tokens:
                    raise ProviderError("provider_error", f"simulated failure after {spent} tokens")
                await pace.until(due)
                yield ThinkingChunk(piece) if kind == "thinking" else TextChunk(piece)
                spent += n
                due += n / params.tokens_per_second
                yield UsageReport(_usage(usage.input_tokens, spent))
        yield UsageReport(_usage(usage.input_tokens, spent))
        calls = params.tool_calls if request.step == 0 else []
        for i, call in enumerate(calls):
            call_id = f"call_{i}"
            for piece in json_pieces(call.arguments):
                yield ToolCallChunk(call_id, call.name, piece)
            yield ToolCallRequest(call_id=call_id, name=call.name, arguments=call.arguments)
        reason: FinishReason = "tool_calls" if calls else "stop"
        yield Finished(reason, reason)
