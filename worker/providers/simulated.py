"""The `simulated` model (contract §6): a real provider that streams text at a set pace.

It serves demos, load tests and benchmarks without keys or network. Tokens are
whitespace tokens: `"Hello, world!\\n"` is two tokens, `"Hello, "` and `"world!\\n"`.

Each chunk carries the usage so far (no separate usage event per token); through the
worker's scheduler (`Paced`) the loop reads it from the feed when the call ends,
however it ends, instead of one usage report per token. A stream that
wakes `behind_ms` (20 ms) or more after a chunk was due (its process is busy) hands over
every chunk due by then as one, as a real model's stream read late from its socket
would: an overloaded worker emits fewer, larger deltas instead of falling further
behind (the publisher's adaptive coalescing, one step earlier). A job with `behind_ms`
< 0 (or a worker with `SPOOL_BEHIND_MS` < 0) keeps one chunk per `chunk_tokens`
whatever the delay.
"""

import asyncio
import hashlib
import re
from collections.abc import AsyncGenerator

import msgspec

from spool.shared.jobs import Message, SimulatedParameters, behind_ms
from spool.worker.errors import ProviderError
from spool.worker.providers.base import (
    Chunk,
    Finished,
    ModelRequest,
    Paced,
    ProviderEvent,
    TextChunk,
    ThinkingChunk,
    ToolCallChunk,
    ToolCallRequest,
    UsageReport,
)
from spool.worker.providers.pacing import pacer, scheduler
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


def _pieces(tokens: list[str], size: int) -> list[str]:
    """The tokens joined `size` at a time (one chunk's text each)."""
    if size == 1:
        return tokens
    return ["".join(tokens[i : i + size]) for i in range(0, len(tokens), size)]


def _usage(input_tokens: int, output_tokens: int) -> Usage:
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


class Chunks:
    """A simulated answer's chunks and when each is due (a `pacing.Feed`).

    The chunks' texts and token counts are computed once, up front, in one pass (no
    generator per chunk: ~90 µs for 500 tokens, not ~220); per token, `take` moves an
    index and the due time. Chunks carry no usage: `usage()` is the call's usage so far,
    read when the caller needs it (`Paced.usage`)."""

    def __init__(
        self,
        params: SimulatedParameters,
        text: str,
        input_tokens: int,
        start: float,
        behind_s: float,
    ) -> None:
        thinking = _pieces(tokenize(params.thinking or ""), params.chunk_tokens)
        answer = _pieces(tokenize(text), params.chunk_tokens)
        self._pieces = thinking + answer  # each chunk's text
        self._text_from = len(thinking)  # the pieces before it are thinking
        self._tokens = [len(p.split()) for p in self._pieces]  # whitespace tokens in each
        self._rate = params.tokens_per_second
        self._fail_after = params.fail_after_tokens
        self._behind_s = behind_s  # < 0: never merge
        self._input = input_tokens
        self._i = 0
        self.spent = self._before = 0
        self.due = start + params.ttft_ms / 1000
        self.finished = not self._pieces

    def usage(self) -> UsageReport:
        """The usage of the chunks taken so far."""
        return UsageReport(_usage(self._input, self.spent))

    def refused(self) -> None:
        """The chunk just taken was not accepted (the sink raised, e.g. `OutputLimit`): it
        does not count, as a chunk carrying its own usage never reached the loop's count."""
        self.spent = self._before

    def take(self, now: float) -> Chunk:
        """The next chunk; when `now` is `behind_s` or more past its due time, together with
        every later chunk of its kind due by `now`."""
        fail_after, spent = self._fail_after, self.spent
        if fail_after is not None and spent >= fail_after:
            raise ProviderError("provider_error", f"simulated failure after {spent} tokens")
        self._before = spent
        i, pieces, tokens = self._i, self._pieces, self._tokens
        piece, n, was_due = pieces[i], tokens[i], self.due
        i, spent, due = i + 1, spent + n, was_due + n / self._rate
        # late: the next chunk is due too and this one is `behind_s` overdue (rare: checked
        # only when the first holds); merged up to the end of its kind
        if due <= now and 0 <= self._behind_s <= now - was_due and i < len(pieces):
            end = self._text_from if i <= self._text_from else len(pieces)
            merged = [piece]
            while i < end and due <= now:
                if fail_after is not None and spent >= fail_after:
                    break
                n = tokens[i]
                merged.append(pieces[i])
                i, spent, due = i + 1, spent + n, due + n / self._rate
            piece = "".join(merged)
        self._i, self.spent, self.due = i, spent, due
        self.finished = i >= len(pieces)
        return TextChunk(piece) if i > self._text_from else ThinkingChunk(piece)


class SimulatedProvider:
    def __init__(self, behind_ms: float = 0.0, *, scheduled: bool = False) -> None:
        self._behind_ms = behind_ms  # the worker's default; the job's `behind_ms` wins
        self._scheduled = scheduled  # chunks through the process's scheduler (`Paced`)

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ProviderEvent, None]:
        params = msgspec.convert(request.parameters, SimulatedParameters)
        text = params.text if params.text is not None else default_text(request.messages)
        prompt = [m.content for m in request.messages] + [request.system or ""]
        usage = Usage(input_tokens=sum(count_tokens(p) for p in prompt))
        yield UsageReport(usage)  # input tokens are known up front, as with real providers
        loop = asyncio.get_running_loop()
        behind_s = behind_ms(request.parameters, self._behind_ms) / 1000
        feed = Chunks(params, text, usage.input_tokens, loop.time(), behind_s)
        if self._scheduled:
            yield Paced(lambda sink, room: scheduler().run(feed, sink, room), feed.usage)
        else:
            pace = pacer()
            while not feed.finished:
                await pace.until(feed.due)
                chunk = feed.take(loop.time())
                yield type(chunk)(chunk.text, feed.usage())
        spent = feed.spent
        yield UsageReport(_usage(usage.input_tokens, spent))
        calls = params.tool_calls if request.step == 0 else []
        for i, call in enumerate(calls):
            call_id = f"call_{i}"
            for piece in json_pieces(call.arguments):
                yield ToolCallChunk(call_id, call.name, piece)
            yield ToolCallRequest(call_id=call_id, name=call.name, arguments=call.arguments)
        reason: FinishReason = "tool_calls" if calls else "stop"
        yield Finished(reason, reason)
