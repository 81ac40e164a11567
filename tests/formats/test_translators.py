"""The formats as pure functions: Spool events in, frames out; no server, no Redis."""

import json
from typing import Any

import pytest

from spool.api.errors import ApiError
from spool.api.formats import FORMATS, parse_format
from spool.api.formats.ai_sdk import AiSdk
from spool.api.formats.base import decode_event
from spool.api.formats.generate import Generate
from spool.api.formats.grampus import Grampus
from spool.api.formats.openai import OpenAI
from spool.api.formats.text import Text
from spool.api.formats.token import Token
from spool.api.sse_encoder import Frame, encode
from spool_client.events import (
    AnyEvent,
    Cost,
    ErrorInfo,
    JobCompleted,
    JobFailed,
    JobQueued,
    JobRetrying,
    JobStarted,
    SessionDeleted,
    StepFinished,
    StepStarted,
    TextDelta,
    ThinkingDelta,
    ToolApprovalRequested,
    ToolApprovalResolved,
    ToolCall,
    ToolCallDelta,
    ToolResult,
    Usage,
    encoder,
)

pytestmark = pytest.mark.unit

J = "job-1"
USAGE = Usage(input_tokens=3, output_tokens=4, total_tokens=7)


def job(*middle: AnyEvent, end: AnyEvent | None = None) -> list[AnyEvent]:
    """A job's events: queued, started, step 0, `middle`, then `end` (completed)."""
    final = end or JobCompleted(
        job_id=J,
        ts=2500,
        finish_reason="stop",
        output_text="Hi there",
        usage=USAGE,
        cost=Cost(input=0.001, output=0.002, total=0.003),
    )
    return [
        JobQueued(job_id=J, ts=2_000_000, session_id="s", model="simulated"),
        JobStarted(job_id=J, attempt=1, worker="w"),
        StepStarted(job_id=J, step=0),
        *middle,
        StepFinished(job_id=J, step=0, finish_reason="stop", usage=USAGE),
        final,
    ]


def text(delta: str, step: int = 0) -> TextDelta:
    return TextDelta(job_id=J, step=step, delta=delta)


RICH = job(
    ThinkingDelta(job_id=J, step=0, delta="hmm"),
    text("Hi"),
    ToolCall(job_id=J, step=0, call_id="c1", name="calculator", arguments={"e": "1+1"}),
    ToolResult(job_id=J, step=0, call_id="c1", name="calculator", output="2"),
    StepStarted(job_id=J, step=1),
    text(" there", step=1),
)


def run(translator: Any, events: list[AnyEvent]) -> list[Frame]:
    return [frame for event in events for frame in translator.feed(event)]


def datas(frames: list[Frame]) -> list[Any]:
    return [f.data.decode() if f.data == b"[DONE]" else json.loads(f.data) for f in frames]


def test_ai_sdk_chunks_open_their_parts_and_end_with_finish_and_done() -> None:
    chunks = datas(run(AiSdk(), RICH))
    assert [c if isinstance(c, str) else c["type"] for c in chunks] == [
        "start",
        "start-step",
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
        "text-end",
        "tool-input-available",
        "tool-output-available",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
        "[DONE]",
    ]
    assert chunks[0] == {"type": "start", "messageId": J}
    assert chunks[5]["id"] == chunks[6]["id"] == chunks[7]["id"] != chunks[10]["id"]
    assert chunks[8] == {
        "type": "tool-input-available",
        "toolCallId": "c1",
        "toolName": "calculator",
        "input": {"e": "1+1"},
        "providerExecuted": True,
    }
    assert chunks[14] == {"type": "finish", "finishReason": "stop"}


def test_ai_sdk_retry_resets_the_void_attempt_and_failure_is_an_error_chunk() -> None:
    error = ErrorInfo(code="provider_error", message="boom")
    failed = JobFailed(job_id=J, error=error, usage=USAGE)
    events = job(
        text("lost"),
        JobRetrying(job_id=J, attempt=2, reason="worker_lost"),
        JobStarted(job_id=J, attempt=2, worker="w2"),
        text("kept"),
        end=failed,
    )
    chunks = datas(run(AiSdk(), events))
    types = [c if isinstance(c, str) else c["type"] for c in chunks]
    assert types == [
        "start",
        "start-step",
        "text-start",
        "text-delta",
        "text-end",
        "reset-step",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "error",
        "[DONE]",
    ]
    assert chunks[10] == {"type": "error", "errorText": "boom"}


def test_ai_sdk_streams_tool_input_and_skips_what_it_cannot_show() -> None:
    events = job(
        text("Let me add."),
        ToolCallDelta(job_id=J, step=0, call_id="c1", name="calculator", arguments_delta='{"e":'),
        ToolCallDelta(job_id=J, step=0, call_id="c1", arguments_delta='"1+1"}'),
        ToolCall(job_id=J, step=0, call_id="c1", name="calculator", arguments={"e": "1+1"}),
        ToolApprovalRequested(job_id=J, step=0, call_id="c1", name="calculator"),
        ToolApprovalResolved(job_id=J, step=0, call_id="c1", approved=True),
        SessionDeleted(),
    )
    chunks = datas(run(AiSdk(), events))
    assert [c if isinstance(c, str) else c["type"] for c in chunks][4:10] == [
        "text-end",
        "tool-input-start",
        "tool-input-delta",
        "tool-input-delta",
        "tool-input-available",
        "finish-step",
    ]
    assert chunks[5] == {
        "type": "tool-input-start",
        "toolCallId": "c1",
        "toolName": "calculator",
        "providerExecuted": True,
    }
    assert chunks[7] == {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '"1+1"}'}


def test_openai_chunks_role_content_finish_usage_done() -> None:
    chunks = datas(run(OpenAI(), job(ThinkingDelta(job_id=J, step=0, delta="hm"), text("Hi"))))
    assert all(c["id"] == f"chatcmpl-{J}" for c in chunks[:-1])
    assert all(c["object"] == "chat.completion.chunk" and c["created"] == 2000 for c in chunks[:-1])
    assert all(c["model"] == "simulated" for c in chunks[:-1])
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks[:-1]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "hm"},
        {"content": "Hi"},
        {},
        None,
    ]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[4]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert chunks[-1] == "[DONE]"
    without_usage = datas(run(OpenAI(include_usage=False), job(text("Hi"))))
    assert [c for c in without_usage if isinstance(c, dict) and "usage" in c] == []


def test_openai_failure_is_an_error_object() -> None:
    failed = JobFailed(job_id=J, error=ErrorInfo(code="timeout", message="too slow"), usage=USAGE)
    chunks = datas(run(OpenAI(), job(end=failed)))
    assert chunks[-2] == {"error": {"message": "too slow", "type": "job_failed", "code": "timeout"}}
    assert chunks[-1] == "[DONE]"


def test_token_and_text_frames() -> None:
    events = job(text("Hi"), text(""), text(" line\nbreak"))
    assert run(Token(), events) == [
        Frame(b"Hi", b"token"),
        Frame(b" line\nbreak", b"token"),
        Frame(b"[DONE]", b"done"),
    ]
    assert run(Text(), events) == [Frame(b"Hi"), Frame(b" line\nbreak"), Frame(b"[DONE]")]
    failed = JobFailed(job_id=J, error=ErrorInfo(code="x", message="y"), usage=USAGE)
    assert run(Text(), job(end=failed))[0] == Frame(b'{"code":"x","message":"y"}', b"error")


def test_grampus_frames_carry_delta_is_final_step_tool_call_and_usage_last() -> None:
    chunks = datas(run(Grampus(), RICH))
    assert chunks[0] == {"delta": "Hi", "is_final": False, "step": 0, "tool_call": None}
    assert chunks[1]["tool_call"] == {"id": "c1", "name": "calculator", "arguments": {"e": "1+1"}}
    assert chunks[2]["tool_result"]["output"] == "2"
    assert chunks[3] == {"delta": " there", "is_final": False, "step": 1, "tool_call": None}
    assert chunks[-1] == {
        "delta": "",
        "is_final": True,
        "step": 1,
        "tool_call": None,
        "token_usage": {
            "input_tokens": 3,
            "output_tokens": 4,
            "total_tokens": 7,
            "cost_usd": 0.003,
        },
        "finish_reason": "stop",
    }
    assert not any(c["is_final"] for c in chunks[:-1])


def test_generate_chunks_and_final() -> None:
    chunks = datas(run(Generate(), RICH))
    assert chunks[:4] == [
        {"type": "text", "name": "thinking", "content": "hmm", "done": False, "index": 0,
         "is_final": False},
        {"type": "text", "name": "thinking", "content": "", "done": True, "index": 1,
         "is_final": False},
        {"type": "text", "name": "output", "content": "Hi", "done": False, "index": 2,
         "is_final": False},
        {"type": "text", "name": "output", "content": " there", "done": False, "index": 3,
         "is_final": False},
    ]  # fmt: skip
    assert chunks[4] == {
        "type": "text", "name": "output", "content": "", "done": True, "index": 4, "is_final": True
    }  # fmt: skip
    assert chunks[5] == {
        "final": True,
        "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        "cost": {"input": 0.001, "output": 0.002, "total": 0.003, "currency": "USD"},
        "warnings": [],
    }


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_resumes_exactly_from_any_event(name: str) -> None:
    """Feeding a fresh translator the events before k (dropping their frames), then the
    rest, gives exactly the frames an uninterrupted translator gives for the rest."""
    factory = FORMATS[name].factory
    whole = factory()
    per_event = [whole.feed(e) for e in RICH]
    for k in range(len(RICH)):
        resumed = factory()
        for event in RICH[:k]:
            resumed.feed(event)
        assert [resumed.feed(e) for e in RICH[k:]] == per_event[k:], k


def test_unknown_event_types_decode_to_nothing() -> None:
    data = b'{"type":"tool.future","job_id":"j","seq":3,"ts":1,"step":0}'
    assert decode_event(b"tool.future", data) is None
    assert decode_event(b"text.delta", b"{not json") is None
    known = decode_event(b"text.delta", encoder.encode(text("x")))
    assert isinstance(known, TextDelta)
    with_extra = b'{"type":"text.delta","job_id":"j","step":0,"delta":"x","chain_step":1}'
    assert isinstance(decode_event(b"text.delta", with_extra), TextDelta)


def test_unknown_format_is_a_422() -> None:
    assert parse_format("spool") is None
    assert parse_format("ai-sdk") is FORMATS["ai-sdk"]
    with pytest.raises(ApiError) as info:
        parse_format("xml")
    assert (info.value.status, info.value.code) == (422, "unknown_format")


def test_the_encoder_splits_line_breaks_into_data_lines() -> None:
    assert encode(b"a\r\nb\rc\nd", id=b"1-0", event=b"token") == (
        b"id: 1-0\nevent: token\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
    )
    assert encode(b"{}") == b"data: {}\n\n"
