"""`spool submit`'s job flags and `--output FILE --text-only`, against the real stack."""

import json
from pathlib import Path

import pytest

from tests.procs import Api
from tests.proxy import CuttingProxy
from tests.test_cli import PARAMS, TEXT, spool

pytestmark = pytest.mark.process

CALC = json.dumps([{"name": "calculator", "arguments": {"expression": "6*7"}}])


async def test_text_only_output_file_holds_exactly_the_answer_through_drops(
    stack: Api, tmp_path: Path
) -> None:
    answer = tmp_path / "answer.txt"
    cuts = [1200, 3000, 900, 2500]
    async with CuttingProxy(stack.port, cuts) as proxy:
        code, out, err = await spool(
            "submit", "hello", "--url", proxy.url, "--output", str(answer), "--text-only", *PARAMS
        )
    assert code == 0, err
    assert proxy.cut == len(cuts), "the connections were cut while the answer streamed"
    assert out == ""
    assert answer.read_text() == TEXT  # no thinking, no summary, nothing twice


async def test_text_only_on_stdout_and_the_rendered_output_in_a_file(
    stack: Api, tmp_path: Path
) -> None:
    code, out, _ = await spool("submit", "hi", "--text-only", "--url", stack.url, *PARAMS)
    assert (code, out) == (0, TEXT)
    rendered = tmp_path / "out.txt"
    code, out, _ = await spool("submit", "hi", "-o", str(rendered), "--url", stack.url, *PARAMS)
    assert (code, out) == (0, "")
    text = rendered.read_text()
    assert text.startswith(f"let me think\n{TEXT}[")  # thinking, answer, then the summary
    assert "out tokens" in text


async def test_job_flags_reach_the_job(stack: Api) -> None:
    code, out, err = await spool(
        "submit", "hi", "-f", "--json", "--url", stack.url,
        "--system", "be very brief", "--tools", "current_time,calculator", "--tools", "calculator",
        "--max-steps", "2", "-p", f"tool_calls={CALC}", "-p", 'text="done"', "-p", "ttft_ms=0",
    )  # fmt: skip
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    steps = [e for e in events if e["type"] == "step.finished"]
    assert steps[0]["usage"]["input_tokens"] == 1 + 3  # "hi" + the system prompt's three words
    results = [e for e in events if e["type"] == "tool.result"]
    assert [(r["name"], r["output"], r["is_error"]) for r in results] == [
        ("calculator", "42", False)
    ]
    assert events[-1]["type"] == "job.completed"
    code, _, err = await spool("submit", "hi", "--agent", "no-such-agent", "--url", stack.url)
    assert code == 2
    assert "422" in err
    assert "agent" in err
    code, _, err = await spool("submit", "hi", "--max-steps", "0", "--url", stack.url)
    assert code == 2
    assert "--max-steps" in err
