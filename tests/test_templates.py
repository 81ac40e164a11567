"""Templates, chains, per-job timeouts, models and request resolution, through the real API
and worker (the session's stack), plus the pure rendering and resolution rules."""

from typing import Any

import httpx
import pytest
import redis

from spool.api.errors import ApiError
from spool.api.resolve import apply_agent
from spool.shared.agents import Agent, AgentsFile
from spool.shared.ids import now_ms
from spool.shared.jobs import JobRequest
from spool.shared.keys import Keys
from spool.shared.templates import TemplateError, render
from tests.fakes.stack import of
from tests.helpers import follow_job, submit
from tests.procs import wait_for

pytestmark = pytest.mark.process

FAST = {"tokens_per_second": 2000, "ttft_ms": 0}


def test_render_placeholders_and_literal_braces() -> None:
    assert render("Hi {name}, {{literal}} {n}", {"name": "Ada", "n": 3}) == "Hi Ada, {literal} 3"
    with pytest.raises(TemplateError, match="'who'") as info:
        render("Hi {who}", {})
    assert info.value.code == "missing_variable"
    with pytest.raises(TemplateError, match="stray") as info:
        render("a { b", {})
    assert info.value.code == "invalid_template"


def test_explicit_max_steps_beats_the_agents() -> None:
    agents = AgentsFile(agents={"a": Agent(max_steps=3, require_approval=["calculator"])})
    given = apply_agent(JobRequest(input="x", agent="a", max_steps=8), agents, "simulated")
    assert given.max_steps == 8
    left_out = apply_agent(JobRequest(input="x", agent="a"), agents, "simulated")
    assert left_out.max_steps == 3
    assert left_out.require_approval == ["calculator"]
    with pytest.raises(ApiError):
        apply_agent(JobRequest(input="x", agent="nobody"), agents, "simulated")


async def test_template_renders_the_user_turn(http: httpx.AsyncClient) -> None:
    accepted = await submit(
        http,
        input=None,
        template="Write about {topic} in {{braces}}.",
        variables={"topic": "a robot"},
        parameters=FAST,
    )
    events = await follow_job(http, accepted)
    # the simulated model echoes the user turn it received
    assert events[-1].json["output_text"].startswith("You said: Write about a robot in {braces}.")


async def test_chain_streams_each_step_and_sums_usage(http: httpx.AsyncClient) -> None:
    chain = [
        {"template": "Name a {thing}.", "parameters": {"text": "Ada Lovelace"}},
        {"template": "Praise {previous}."},
    ]
    accepted = await submit(
        http, input=None, chain=chain, variables={"thing": "scientist"}, parameters=FAST
    )
    events = await follow_job(http, accepted)
    done = events[-1].json
    assert done["type"] == "job.completed"
    step_events = [e.json for e in events if "step" in e.json]
    assert {e["chain_step"] for e in step_events} == {0, 1}
    by_step = {
        c: "".join(e["delta"] for e in of(events, "text.delta") if e["chain_step"] == c)
        for c in (0, 1)
    }
    assert by_step[0] == "Ada Lovelace"
    assert by_step[1].startswith("You said: Praise Ada Lovelace.")
    assert done["output_text"] == by_step[1]
    finished = of(events, "step.finished")
    assert [f["chain_step"] for f in finished] == [0, 1]
    assert done["usage"]["output_tokens"] == sum(f["usage"]["output_tokens"] for f in finished)
    assert done["usage"]["input_tokens"] == sum(f["usage"]["input_tokens"] for f in finished)
    assert done["cost"]["total"] == 0.0
    job = (await http.get(f"/v1/jobs/{accepted['job_id']}")).json()
    assert job["output_text"] == done["output_text"]


@pytest.mark.parametrize(
    ("body", "code", "names"),
    [
        ({"template": "Hi {who} and {what}", "variables": {"what": 1}}, "missing_variable", "who"),
        ({"template": "a } b"}, "invalid_template", "stray"),
        ({"template": "x", "input": "y"}, "invalid_field", "exactly one"),
        ({"input": "x", "variables": {"a": "b"}}, "invalid_field", "variables"),
        ({"chain": [{"template": "{previous}"}]}, "invalid_chain", "previous"),
        ({"chain": [{"template": "a"}, {"template": "{nope}"}]}, "missing_variable", "nope"),
        ({"chain": [{"template": "a"}] * 9}, "invalid_field", "chain"),
        ({"chain": []}, "invalid_field", "chain"),
        ({"chain": [{"template": "a", "model": "nobody:x"}]}, "unknown_model", "nobody"),
        ({"chain": [{"template": "a", "tools": ["nope"]}]}, "unknown_tool", "nope"),
        ({"input": "x", "tools": ["calculator", "shell"]}, "unknown_tool", "shell"),
        ({"input": "x", "timeout_s": 0}, "invalid_field", "timeout_s"),
        ({"input": "x", "parameters": {"approval_timeout_s": -1}}, "invalid_field", "approval"),
    ],
)
async def test_bad_templates_chains_and_tools_are_422(
    http: httpx.AsyncClient, redis_url: str, body: dict[str, Any], code: str, names: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:  # the worker says which tools it serves (every 0.2 s here); the API checks them
        wait_for(lambda: bool(client.exists(Keys().tools())), 10, "the worker's tool names")
    finally:
        client.close()
    response = await http.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert names in error["message"]


async def test_timeout_fails_the_job_keeping_partial_output(http: httpx.AsyncClient) -> None:
    slow = {"text": " ".join(f"w{i}" for i in range(200)), "tokens_per_second": 20, "ttft_ms": 0}
    accepted = await submit(http, parameters=slow, timeout_s=0.5)
    events = await follow_job(http, accepted)
    failed = events[-1].json
    assert failed["type"] == "job.failed"
    assert failed["error"]["code"] == "timeout"
    text = "".join(d["delta"] for d in of(events, "text.delta"))
    assert text
    assert failed["output_text"] == text
    assert failed["usage"]["output_tokens"] > 0
    assert failed["cost"] == {"input": 0.0, "output": 0.0, "total": 0.0, "currency": "USD"}


async def test_cancelled_job_reports_its_cost(http: httpx.AsyncClient) -> None:
    slow = {"text": " ".join(f"w{i}" for i in range(200)), "tokens_per_second": 20, "ttft_ms": 0}
    accepted = await submit(http, parameters=slow)
    async with http.stream("GET", accepted["events_url"]) as response:
        async for line in response.aiter_lines():
            if line == "event: text.delta":
                break
    cancel = await http.post(f"/v1/jobs/{accepted['job_id']}/cancel")
    assert cancel.status_code == 202
    events = await follow_job(http, accepted)
    assert events[-1].json["type"] == "job.cancelled"
    assert events[-1].json["cost"]["currency"] == "USD"


async def test_simulated_tool_calls_stream_their_arguments(http: httpx.AsyncClient) -> None:
    call = {"name": "calculator", "arguments": {"expression": "(1 + 2) * 3 + 4 * 5"}}
    accepted = await submit(
        http, tools=["calculator"], parameters={**FAST, "text": "ok", "tool_calls": [call]}
    )
    events = await follow_job(http, accepted)
    deltas = of(events, "tool.call.delta")
    assert len(deltas) > 1
    assert {(d["call_id"], d["name"]) for d in deltas} == {("call_0", "calculator")}
    assert "".join(d["arguments_delta"] for d in deltas) == '{"expression":"(1 + 2) * 3 + 4 * 5"}'
    (result,) = of(events, "tool.result")
    assert result["output"] == "29"
    assert [s["stop_reason"] for s in of(events, "step.finished")] == ["tool_calls", "stop"]


async def test_models_lists_capabilities_and_prices(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/models")
    assert response.status_code == 200
    models = {m["model"]: m for m in response.json()["models"]}
    assert models["simulated"]["price"] == {
        "input": 0.0,
        "output": 0.0,
        "currency": "USD",
        "per": "1M tokens",
    }
    sonnet = models["anthropic:claude-sonnet-4-5"]
    assert sonnet["provider"] == "anthropic"
    assert (sonnet["streaming"], sonnet["thinking"], sonnet["tools"]) == (True, True, True)
    assert sonnet["price"]["input"] == 3.0
    assert models["openai:gpt-4o-mini"]["thinking"] is False


async def test_a_tool_a_worker_starts_serving_is_accepted_at_once(
    http: httpx.AsyncClient, redis_url: str
) -> None:
    """The API remembers the served names for a moment; a name missing from its copy is
    checked against Redis again before it is refused."""
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: bool(client.exists(Keys().tools())), 10, "the worker's tool names")
        known = await http.post("/v1/jobs", json={"input": "x", "tools": ["calculator"]})
        assert known.status_code == 202, known.text  # the API now holds the served names
        unknown = await http.post("/v1/jobs", json={"input": "x", "tools": ["late_tool"]})
        assert unknown.json()["error"]["code"] == "unknown_tool"
        client.hset(Keys().tools(), "late_tool", now_ms() + 60_000)  # as a worker publishes
        late = await http.post("/v1/jobs", json={"input": "x", "tools": ["late_tool"]})
        assert late.status_code == 202, late.text
        await http.post(f"/v1/jobs/{late.json()['job_id']}/cancel")
    finally:
        client.close()
