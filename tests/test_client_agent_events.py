"""The client folds the agent events of issue 11 from a real stream: streamed tool
arguments (`tool.call.delta`), chains (`chain_step`), templates, and `spool eval` on a
templated case."""

import json
from pathlib import Path

import pytest

from spool_client import SpoolClient
from tests.procs import Api
from tests.test_cli import spool

pytestmark = pytest.mark.process

FAST = {"ttft_ms": 0, "tokens_per_second": 500}


async def test_streamed_tool_arguments_add_up_to_the_call(stack: Api) -> None:
    arguments = {"expression": "(6 * 7) + 1 - 1", "note": "a longer argument to stream"}
    params = {
        **FAST,
        "text": "done",
        "tool_calls": [{"name": "calculator", "arguments": arguments}],
    }
    pieces: list[str] = []
    async with SpoolClient(stack.url) as client:
        result = await client.run(
            "hi",
            tools=["calculator"],
            parameters=params,
            on_event=lambda e: (
                pieces.append(e.data["arguments_delta"]) if e.type == "tool.call.delta" else None
            ),
        )
    assert result.status == "completed"
    assert len(pieces) > 1, "the arguments arrived in pieces"
    assert json.loads(result.tool_arguments["call_0"]) == arguments
    assert result.tool_calls[0].arguments == arguments


async def test_a_chain_is_folded_step_by_step(stack: Api) -> None:
    chain = [
        {"template": "Name a colour for {thing}.", "parameters": {**FAST, "text": "blue sky"}},
        {"template": "Use it: {previous}", "parameters": {**FAST, "text": "a blue sky poem"}},
    ]
    steps: list[int | None] = []
    async with SpoolClient(stack.url) as client:
        result = await client.run(
            chain=chain,
            variables={"thing": "the sea"},
            on_event=lambda e: steps.append(e.chain_step) if e.type == "text.delta" else None,
        )
    assert result.status == "completed"
    assert result.chain_outputs == ["blue sky", "a blue sky poem"]
    assert (result.chain_step, result.text) == (1, "a blue sky poem")
    assert steps == [0, 0, 1, 1, 1, 1]
    assert result.usage.output_tokens == 2 + 4


async def test_eval_runs_a_templated_case(stack: Api, tmp_path: Path) -> None:
    path = tmp_path / "cases.toml"
    path.write_text(
        """
[[cases]]
name = "templated"
model = "simulated"
template = "Write about {topic}."
variables = { topic = "streams" }
parameters = { ttft_ms = 0, tokens_per_second = 500 }
assertions = [{ type = "stream_contains", text = "Write about streams." }]
"""
    )
    code, out, err = await spool("eval", str(path), "--url", stack.url, "--json")
    assert code == 0, out + err
    assert json.loads(out)["passed"] == 1
