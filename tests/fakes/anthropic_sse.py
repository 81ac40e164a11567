"""Anthropic Messages SSE frames, as the streaming docs list them: `message_start`,
per block `content_block_start` / `content_block_delta`... / `content_block_stop`,
`message_delta` (stop reason, cumulative usage), `message_stop`; `ping` anywhere;
`error` mid-stream."""

import json
from typing import Any


def frame(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"


def message_start(input_tokens: int, model: str = "claude-sonnet-4-5", **usage: int) -> str:
    message = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage},
    }
    return frame("message_start", {"message": message})


def block(index: int, content_block: dict[str, Any], deltas: list[dict[str, Any]]) -> list[str]:
    return [
        frame("content_block_start", {"index": index, "content_block": content_block}),
        *(frame("content_block_delta", {"index": index, "delta": d}) for d in deltas),
        frame("content_block_stop", {"index": index}),
    ]


def text_block(index: int, *pieces: str) -> list[str]:
    deltas = [{"type": "text_delta", "text": p} for p in pieces]
    return block(index, {"type": "text", "text": ""}, deltas)


def thinking_block(index: int, *pieces: str, signature: str = "sig-1") -> list[str]:
    deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces]
    deltas.append({"type": "signature_delta", "signature": signature})
    return block(index, {"type": "thinking", "thinking": "", "signature": ""}, deltas)


def tool_use_block(index: int, call_id: str, name: str, *json_pieces: str) -> list[str]:
    deltas = [{"type": "input_json_delta", "partial_json": p} for p in json_pieces]
    return block(index, {"type": "tool_use", "id": call_id, "name": name, "input": {}}, deltas)


def message_end(stop_reason: str, output_tokens: int) -> list[str]:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return [
        frame("message_delta", {"delta": delta, "usage": {"output_tokens": output_tokens}}),
        frame("message_stop", {}),
    ]


def ping() -> str:
    return frame("ping", {})


def error(kind: str, message: str) -> str:
    return frame("error", {"error": {"type": kind, "message": message}})


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}
