"""The worker as a real process, through the real `openai` SDK, against a fake server
speaking the Chat Completions SSE wire format; also the named OpenAI-compatible endpoint."""

import httpx
import pytest

from tests.fakes import openai_sse as o
from tests.fakes.server import FakeProvider, Reply
from tests.fakes.stack import of
from tests.helpers import follow_job, submit

pytestmark = pytest.mark.process

MODEL = "openai:gpt-4o-mini"


def text_reply(*pieces: str, prompt: int = 10, completion: int = 5) -> Reply:
    return Reply(sse=[*o.text(*pieces), *o.end("stop", prompt, completion)])


async def test_plain_text_with_usage(http: httpx.AsyncClient, fake: FakeProvider) -> None:
    fake.reset(text_reply("Hel", "lo"))
    events = await follow_job(http, await submit(http, model=MODEL, system="Be brief"))
    assert [d["delta"] for d in of(events, "text.delta")] == ["Hel", "lo"]
    done = events[-1].json
    assert done["output_text"] == "Hello"
    assert done["usage"] == {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    assert done["cost"]["total"] == pytest.approx((10 * 0.15 + 5 * 0.6) / 1e6)
    (sent,) = fake.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer test-openai-key"
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.json["stream_options"] == {"include_usage": True}
    assert sent.json["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "hello"},
    ]


async def test_two_parallel_tool_calls(http: httpx.AsyncClient, fake: FakeProvider) -> None:
    # Fragments of the two calls interleave; they are merged by index.
    first = o.tool_call(0, "call_a", "calculator", '{"expression":', ' "2+2"}')
    second = o.tool_call(1, "call_b", "calculator", '{"expression": "3', '*3"}')
    interleaved = [first[0], second[0], first[1], second[1], first[2], second[2]]
    fake.reset(
        Reply(sse=[*interleaved, *o.end("tool_calls", 50, 20)]),
        text_reply("4 and 9", prompt=80, completion=4),
    )
    accepted = await submit(http, model=MODEL, input="2+2 and 3*3?", tools=["calculator"])
    events = await follow_job(http, accepted)
    calls = of(events, "tool.call")
    assert [(c["call_id"], c["arguments"]) for c in calls] == [
        ("call_a", {"expression": "2+2"}),
        ("call_b", {"expression": "3*3"}),
    ]
    # each call's arguments stream in pieces, interleaved as the model sent them
    deltas = [
        (d["call_id"], d["name"], d["arguments_delta"]) for d in of(events, "tool.call.delta")
    ]
    assert deltas == [
        ("call_a", "calculator", '{"expression":'),
        ("call_b", "calculator", '{"expression": "3'),
        ("call_a", "calculator", ' "2+2"}'),
        ("call_b", "calculator", '*3"}'),
    ]
    results = {r["call_id"]: r["output"] for r in of(events, "tool.result")}
    assert results == {"call_a": "4", "call_b": "9"}
    done = events[-1].json
    assert done["usage"] == {"input_tokens": 130, "output_tokens": 24, "total_tokens": 154}
    assert done["output_text"] == "4 and 9"
    second_request = fake.requests[1].json
    assert second_request["messages"][-3:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "2+2"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "3*3"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "4"},
        {"role": "tool", "tool_call_id": "call_b", "content": "9"},
    ]


async def test_tool_error_is_a_result_and_max_steps_is_length(
    http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    fake.reset(
        Reply(
            sse=[
                *o.tool_call(0, "c1", "calculator", '{"expression": "x+1"}'),
                *o.end("tool_calls", 5, 5),
            ]
        )
    )
    accepted = await submit(http, model=MODEL, tools=["calculator"], max_steps=1)
    events = await follow_job(http, accepted)
    (result,) = of(events, "tool.result")
    assert result["is_error"] is True
    assert "Name" in result["output"]
    done = events[-1].json
    assert done["type"] == "job.completed"
    assert done["finish_reason"] == "length"
    assert any("max_steps" in w for w in done["warnings"])


async def test_named_endpoint_via_agent(http: httpx.AsyncClient, fake: FakeProvider) -> None:
    fake.reset(
        Reply(
            sse=[
                *o.tool_call(0, "c1", "calculator", '{"expression": "2+2"}'),
                *o.end("tool_calls", 7, 3),
            ]
        ),
        text_reply("4", prompt=9, completion=1),
    )
    events = await follow_job(http, await submit(http, agent="mathy", input="2+2?"))
    assert events[0].json["model"] == "local:qwen2.5"
    assert of(events, "tool.result")[0]["output"] == "4"
    done = events[-1].json
    assert done["output_text"] == "4"
    assert done["cost"]["total"] == pytest.approx((16 * 1.0 + 4 * 2.0) / 1e6)  # agents-file price
    first = fake.requests[0]
    assert first.headers["authorization"] == "Bearer test-local-key"
    assert first.json["model"] == "qwen2.5"
    assert first.json["messages"][0] == {"role": "system", "content": "Use the calculator."}
    assert [t["function"]["name"] for t in first.json["tools"]] == ["calculator"]


async def test_non_streaming_endpoint_degrades_to_one_chunk(
    http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    completion = {
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "All at once."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    fake.reset(Reply(body=completion))
    events = await follow_job(http, await submit(http, model="batch:m"))
    assert [d["delta"] for d in of(events, "text.delta")] == ["All at once."]
    done = events[-1].json
    assert done["usage"]["total_tokens"] == 7
    assert done["cost"] is None
    assert any("no price" in w for w in done["warnings"])
    assert "stream" not in fake.requests[0].json


async def test_401_and_dropped_stream(http: httpx.AsyncClient, fake: FakeProvider) -> None:
    fake.reset(
        Reply(status=401, body={"error": {"message": "bad key", "type": "invalid_request_error"}})
    )
    events = await follow_job(http, await submit(http, model=MODEL))
    assert events[-1].json["error"]["code"] == "provider_auth"
    fake.reset(Reply(sse=o.text("cut"), drop=True))
    events = await follow_job(http, await submit(http, model=MODEL))
    failed = events[-1].json
    assert failed["error"]["code"] == "provider_disconnected"
    assert failed["output_text"] == "cut"


async def test_429_then_success(http: httpx.AsyncClient, fake: FakeProvider) -> None:
    limited = {
        "error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}
    }
    fake.reset(Reply(status=429, body=limited), text_reply("fine"))
    events = await follow_job(http, await submit(http, model=MODEL))
    done = events[-1].json
    assert done["output_text"] == "fine"
    assert "provider_rate_limited" in done["warnings"][0]
    assert len(fake.requests) == 2


async def test_429_retry_after_ms(http: httpx.AsyncClient, fake: FakeProvider) -> None:
    """OpenAI's `retry-after-ms` header sets the wait (the stack's backoff is 0.01 s)."""
    limited = {"error": {"message": "Rate limit", "type": "requests"}}
    fake.reset(
        Reply(status=429, body=limited, headers={"retry-after-ms": "700"}), text_reply("later")
    )
    events = await follow_job(http, await submit(http, model=MODEL))
    assert events[-1].json["output_text"] == "later"
    first, second = fake.requests
    assert second.at - first.at >= 0.7


async def test_unknown_agent_or_endpoint_is_422(http: httpx.AsyncClient) -> None:
    for body in ({"agent": "nobody"}, {"model": "nowhere:m"}, {"model": "openai"}):
        response = await http.post("/v1/jobs", json={"input": "hi", **body})
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] in {"unknown_agent", "unknown_model"}
