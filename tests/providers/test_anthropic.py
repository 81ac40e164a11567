"""The worker as a real process, through the real `anthropic` SDK, against a fake server
speaking the Messages SSE wire format."""

import httpx
import pytest

from tests.fakes import anthropic_sse as a
from tests.fakes.server import FakeProvider, Reply
from tests.fakes.stack import of
from tests.helpers import follow_job, read_stream, submit
from tests.procs import until

pytestmark = pytest.mark.process

MODEL = "anthropic:claude-sonnet-4-5"


def text_reply(*pieces: str, input_tokens: int = 10, output_tokens: int = 5) -> Reply:
    return Reply(
        sse=[
            a.message_start(input_tokens),
            a.ping(),
            *a.text_block(0, *pieces),
            *a.message_end("end_turn", output_tokens),
        ]
    )


async def test_plain_text(http: httpx.AsyncClient, fake: FakeProvider) -> None:
    fake.reset(text_reply("Hello", ", world", "!"))
    events = await follow_job(http, await submit(http, model=MODEL, input="hi", system="Be kind"))
    assert [d["delta"] for d in of(events, "text.delta")] == ["Hello", ", world", "!"]
    done = events[-1].json
    assert done["type"] == "job.completed"
    assert done["output_text"] == "Hello, world!"
    assert done["finish_reason"] == "stop"
    assert done["usage"] == {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    (sent,) = fake.requests
    assert sent.path == "/v1/messages"
    assert "test-anthropic-key" in str(sent.headers), sent.headers
    assert sent.json["model"] == "claude-sonnet-4-5"
    assert sent.json["stream"] is True
    assert sent.json["system"] == "Be kind"
    assert sent.json["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


async def test_rejected_call_reaches_the_model_as_a_tool_result(
    http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    """A call waiting for approval, rejected: the provider's next request carries the
    rejection (with its reason) as the call's tool_result, and the call never ran."""
    fake.reset(
        Reply(
            sse=[
                a.message_start(10),
                *a.tool_use_block(0, "toolu_07", "calculator", '{"expression": "9*9"}'),
                *a.message_end("tool_use", 5),
            ]
        ),
        text_reply("Understood."),
    )
    accepted = await submit(
        http, model=MODEL, tools=["calculator"], require_approval=["calculator"]
    )
    async with http.stream("GET", accepted["events_url"]) as response:
        async for line in response.aiter_lines():
            if line == "event: tool.approval_requested":
                break
    url = f"/v1/jobs/{accepted['job_id']}/approvals/toolu_07"
    decided = await http.post(url, json={"approved": False, "reason": "not now"})
    assert decided.status_code == 200
    events = await follow_job(http, accepted)
    assert events[-1].json["output_text"] == "Understood."
    (result,) = of(events, "tool.result")
    assert result["is_error"] is True
    _, second = fake.requests
    (answer,) = second.json["messages"][-1]["content"]
    assert answer["type"] == "tool_result"
    assert answer["tool_use_id"] == "toolu_07"
    assert answer["is_error"] is True
    assert "rejected" in answer["content"]
    assert "not now" in answer["content"]
    assert second.json["messages"][-2]["content"][-1]["input"] == {"expression": "9*9"}


async def test_thinking_streams_before_text(http: httpx.AsyncClient, fake: FakeProvider) -> None:
    fake.reset(
        Reply(
            sse=[
                a.message_start(12),
                *a.thinking_block(0, "Let me ", "think."),
                *a.text_block(1, "42"),
                *a.message_end("end_turn", 30),
            ]
        )
    )
    accepted = await submit(http, model=MODEL, parameters={"thinking": 2048})
    events = await follow_job(http, accepted)
    kinds = [e.event for e in events if e.event in {"thinking.delta", "text.delta"}]
    assert kinds == ["thinking.delta", "thinking.delta", "text.delta"]
    assert "".join(d["delta"] for d in of(events, "thinking.delta")) == "Let me think."
    assert events[-1].json["output_text"] == "42"
    assert fake.requests[0].json["thinking"] == {"type": "enabled", "budget_tokens": 2048}


async def test_calculator_round_trip_sums_usage_and_costs(
    http: httpx.AsyncClient, fake: FakeProvider, session_id: str
) -> None:
    fake.reset(
        Reply(
            sse=[
                a.message_start(100, cache_read_input_tokens=1000),
                *a.text_block(0, "Let me compute."),
                *a.tool_use_block(1, "toolu_01", "calculator", '{"expres', 'sion": "2', '+2"}'),
                *a.message_end("tool_use", 20),
            ]
        ),
        text_reply("2 + 2 = 4", input_tokens=150, output_tokens=10),
    )
    accepted = await submit(
        http, model=MODEL, input="What is 2+2?", tools=["calculator"], session_id=session_id
    )
    events = await follow_job(http, accepted)
    (call,) = of(events, "tool.call")
    assert call["arguments"] == {"expression": "2+2"}
    assert call["call_id"] == "toolu_01"
    # the arguments stream as the model writes them, before the complete call
    deltas = of(events, "tool.call.delta")
    assert [d["arguments_delta"] for d in deltas] == ['{"expres', 'sion": "2', '+2"}']
    assert {(d["call_id"], d["name"], d["step"]) for d in deltas} == {("toolu_01", "calculator", 0)}
    kinds = [e.event for e in events]
    assert kinds.index("tool.call") > max(i for i, k in enumerate(kinds) if k == "tool.call.delta")
    (result,) = of(events, "tool.result")
    assert result["output"] == "4"
    assert result["is_error"] is False
    assert [s["finish_reason"] for s in of(events, "step.finished")] == ["tool_calls", "stop"]
    assert [s["stop_reason"] for s in of(events, "step.finished")] == ["tool_use", "end_turn"]
    done = events[-1].json
    assert done["stop_reason"] == "end_turn"
    assert done["output_text"] == "Let me compute.2 + 2 = 4"
    # input counts cached tokens: (100 + 1000) + 150; output 20 + 10
    assert done["usage"] == {"input_tokens": 1250, "output_tokens": 30, "total_tokens": 1280}
    # $3/M uncached input, $0.30/M cache read, $15/M output
    assert done["cost"]["input"] == pytest.approx((250 * 3 + 1000 * 0.3) / 1e6)
    assert done["cost"]["output"] == pytest.approx(30 * 15 / 1e6)
    assert done["cost"]["currency"] == "USD"
    first, second = fake.requests
    assert first.json["tools"][0]["name"] == "calculator"
    assert first.json["tools"][0]["input_schema"]["required"] == ["expression"]
    assert second.json["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me compute."},
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "calculator",
                    "input": {"expression": "2+2"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01",
                    "content": "4",
                    "is_error": False,
                }
            ],
        },
    ]
    # conversation memory: the next job of the session starts with the whole exchange
    fake.reset(text_reply("Yes."))
    await follow_job(http, await submit(http, model=MODEL, input="Sure?", session_id=session_id))
    history = fake.requests[0].json["messages"]
    assert len(history) == 5
    assert history[0]["content"] == [{"type": "text", "text": "What is 2+2?"}]
    assert history[-1] == {"role": "user", "content": [{"type": "text", "text": "Sure?"}]}
    fake.reset(text_reply("Fresh."))
    accepted = await submit(http, model=MODEL, input="New", session_id=session_id, history=False)
    await follow_job(http, accepted)
    assert len(fake.requests[0].json["messages"]) == 1


async def test_error_event_mid_stream_fails_keeping_partial_output(
    http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    fake.reset(
        Reply(
            sse=[
                a.message_start(10),
                *a.text_block(0, "Partial")[:2],
                a.error("overloaded_error", "Overloaded"),
            ]
        )
    )
    events = await follow_job(http, await submit(http, model=MODEL))
    failed = events[-1].json
    assert failed["type"] == "job.failed"
    assert failed["error"]["code"] == "provider_overloaded"
    assert failed["output_text"] == "Partial"
    assert len(fake.requests) == 1  # deltas were out: no retry


async def test_connection_dropped_mid_stream(http: httpx.AsyncClient, fake: FakeProvider) -> None:
    fake.reset(Reply(sse=[a.message_start(10), *a.text_block(0, "Half")[:2]], drop=True))
    events = await follow_job(http, await submit(http, model=MODEL))
    failed = events[-1].json
    assert failed["type"] == "job.failed"
    assert failed["error"]["code"] == "provider_disconnected"
    assert failed["output_text"] == "Half"


async def test_401_is_provider_auth(http: httpx.AsyncClient, fake: FakeProvider) -> None:
    body = a.error_body("authentication_error", "invalid x-api-key")
    fake.reset(Reply(status=401, body=body))
    events = await follow_job(http, await submit(http, model=MODEL))
    assert events[-1].json["error"]["code"] == "provider_auth"
    assert len(fake.requests) == 1


async def test_429_then_success_retries_with_a_warning(
    http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    fake.reset(
        Reply(status=429, body=a.error_body("rate_limit_error", "slow down")),
        Reply(status=529, body=a.error_body("overloaded_error", "Overloaded")),
        text_reply("ok"),
    )
    events = await follow_job(http, await submit(http, model=MODEL))
    done = events[-1].json
    assert done["type"] == "job.completed"
    assert done["output_text"] == "ok"
    assert len(fake.requests) == 3
    assert "provider_rate_limited" in done["warnings"][0]
    assert "provider_overloaded" in done["warnings"][1]
    assert [e.event for e in events].count("step.started") == 1


async def test_retry_waits_for_retry_after(http: httpx.AsyncClient, fake: FakeProvider) -> None:
    """The stack's own backoff is 0.01 s: only the provider's `retry-after: 1` explains a
    second request a second later."""
    fake.reset(
        Reply(
            status=429,
            body=a.error_body("rate_limit_error", "slow down"),
            headers={"retry-after": "1"},
        ),
        text_reply("ok"),
    )
    events = await follow_job(http, await submit(http, model=MODEL))
    done = events[-1].json
    assert done["output_text"] == "ok", done
    first, second = fake.requests
    assert second.at - first.at >= 1.0
    assert "after 1.0" in done["warnings"][0], done["warnings"]


async def test_retry_after_beyond_the_bound_fails_at_once(
    http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    fake.reset(
        Reply(
            status=529,
            body=a.error_body("overloaded_error", "Overloaded"),
            headers={"retry-after": "3600"},
        ),
        text_reply("never sent"),
    )
    events = await follow_job(http, await submit(http, model=MODEL))
    failed = events[-1].json
    assert failed["type"] == "job.failed"
    assert failed["error"]["code"] == "provider_overloaded"
    assert len(fake.requests) == 1


async def test_idle_timeout_is_provider_timeout(
    http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    fake.reset(Reply(sse=[a.message_start(10), *a.text_block(0, "wait")[:2]], stall=True))
    events = await follow_job(http, await submit(http, model=MODEL))
    fake.unstall()
    failed = events[-1].json
    assert failed["error"]["code"] == "provider_timeout"
    assert failed["output_text"] == "wait"


async def test_cancel_closes_the_provider_stream(
    http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    """A cancelled job stops paying for tokens: the worker hangs up on the provider."""
    fake.reset(Reply(sse=[a.message_start(10), *a.text_block(0, "partial")[:2]], stall=True))
    accepted = await submit(http, model=MODEL)
    status, head = await read_stream(http, accepted["events_url"], max_events=4)
    assert status == 200
    assert head[-1].event == "text.delta", [e.event for e in head]
    reply = await http.post(f"/v1/jobs/{accepted['job_id']}/cancel")
    assert reply.status_code == 202, (reply.json(), [e.data for e in head])
    events = await follow_job(http, accepted)
    fake.unstall()
    done = events[-1].json
    assert done["type"] == "job.cancelled"
    assert done["output_text"] == "partial"
    assert done["usage"]["input_tokens"] == 10
    await until(fake.hung_up.is_set, 10, "the worker to close the provider's stream")
