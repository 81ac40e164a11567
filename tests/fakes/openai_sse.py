"""OpenAI Chat Completions SSE: `data: <chat.completion.chunk>` lines, `delta.tool_calls`
fragments keyed by `index`, a chunk with `finish_reason`, with `include_usage` a last chunk
with empty `choices` and the usage, then `data: [DONE]`."""

import json
from typing import Any


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    data = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": choices,
        **extra,
    }
    return f"data: {json.dumps(data)}\n\n"


def text(*pieces: str) -> list[str]:
    return [chunk({"role": "assistant", "content": ""}), *(chunk({"content": p}) for p in pieces)]


def tool_call(index: int, call_id: str, name: str, *argument_pieces: str) -> list[str]:
    first = {"index": index, "id": call_id, "type": "function"}
    first["function"] = {"name": name, "arguments": ""}
    rest = [{"index": index, "function": {"arguments": p}} for p in argument_pieces]
    return [chunk({"tool_calls": [f]}) for f in (first, *rest)]


def end(finish: str, prompt_tokens: int, completion_tokens: int) -> list[str]:
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return [chunk({}, finish), chunk(None, usage=usage), "data: [DONE]\n\n"]
