"""`spool eval`: the real console script against the real stack (simulated model)."""

import asyncio
import json
import os
import pty
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from spool.cli.embedded import free_port
from tests.procs import Api
from tests.test_cli import SPOOL, spool

pytestmark = pytest.mark.process

# Thresholds are generous: these tests check the verdicts and the plumbing, not speed.
ALL_TEN = """
[defaults]
model = "simulated"

[[cases]]
name = "all-ten"
user_message = "What is 2 + 2?"
parameters = { text = "It is 4, as two and two make four.", ttft_ms = 10, tokens_per_second = 200 }
assertions = [
  { type = "first_token_within", seconds = 30.0 },
  { type = "stream_completes" },
  { type = "no_stall", max_gap_seconds = 30.0 },
  { type = "min_throughput", tokens_per_second = 0.01 },
  { type = "stream_contains", text = "4" },
  { type = "stream_not_empty" },
  { type = "stream_output_length", min_chars = 10, max_chars = 200 },
  { type = "no_repetition", window = 3 },
  { type = "chunk_count_between", min_count = 9, max_count = 9 },
  { type = "token_usage_reported" },
]
"""

TWO_BROKEN = """
[[cases]]
name = "fine"
input = "hi"
model = "simulated"
parameters = { text = "hello there", ttft_ms = 0, tokens_per_second = 500 }
assertions = [{ type = "stream_contains", text = "there" }]

[[cases]]
name = "looping"
input = "Sing"
model = "simulated"
parameters = { text = "la la la la la la", ttft_ms = 0, tokens_per_second = 500 }
assertions = [
  { type = "stream_completes" },
  { type = "stream_contains", text = "chorus" },
  { type = "no_repetition", window = 2 },
  { type = "stream_not_empty" },
]
"""


def suite_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cases.toml"
    path.write_text(text)
    return str(path)


async def test_every_assertion_passes_on_a_real_stream(stack: Api, tmp_path: Path) -> None:
    junit = tmp_path / "out.xml"
    path = suite_file(tmp_path, ALL_TEN)
    code, out, err = await spool("eval", path, "--url", stack.url, "--json", "--junit", str(junit))
    assert code == 0, out + err
    result = json.loads(out)
    assert (result["pass_rate"], result["passed"], result["total_cases"]) == (1.0, 1, 1)
    (case,) = result["case_results"]
    assert (case["case_name"], case["passed"]) == ("all-ten", True)
    assert case["duration_ms"] > 0
    kinds = [a["assertion_type"] for a in case["assertion_results"]]
    assert len(set(kinds)) == 10
    assert all(a["passed"] and a["detail"] for a in case["assertion_results"])
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "0")
    code, table, _ = await spool("eval", path, "--url", stack.url)  # the table, not JSON
    assert code == 0
    assert "1/1 passed (100%)" in table
    assert "all-ten" in table


async def test_a_case_breaking_two_assertions_fails_with_exactly_those(
    stack: Api, tmp_path: Path
) -> None:
    junit = tmp_path / "out.xml"
    path = suite_file(tmp_path, TWO_BROKEN)
    code, out, err = await spool(
        "eval", path, "--url", stack.url, "--json", "--junit", str(junit), "--concurrency", "2"
    )
    assert code == 1, out + err
    result = json.loads(out)
    assert (result["pass_rate"], result["passed"], result["total_cases"]) == (0.5, 1, 2)
    fine, looping = result["case_results"]
    assert (fine["case_name"], fine["passed"]) == ("fine", True)
    assert (looping["case_name"], looping["passed"], looping["error"]) == ("looping", False, None)
    failed = {
        a["assertion_type"]: a["detail"] for a in looping["assertion_results"] if not a["passed"]
    }
    assert failed == {
        "stream_contains": "'chorus' not in the 17 streamed chars 'la la la la la la'",
        "no_repetition": "2 words 'la la' at word 0 repeat at word 1",
    }
    assert len(looping["assertion_results"]) == 4
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["fine", "looping"]
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "2 of 4 assertions failed"


async def test_a_malformed_file_exits_2_with_one_line(stack: Api, tmp_path: Path) -> None:
    bad = "[[cases]]\nname = 'x'\ninput = 'hi'\nassertions = [{ type = 'first_token_within' }]\n"
    code, out, err = await spool("eval", suite_file(tmp_path, bad), "--url", stack.url)
    assert (code, out) == (2, "")
    assert "Traceback" not in err
    assert err.strip().count("\n") == 0, err
    assert "case 1 ('x'): assertion 1: first_token_within: missing a required argument" in err
    code, _, err = await spool("eval", str(tmp_path / "missing.toml"), "--url", stack.url)
    assert code == 2
    assert "cannot read" in err
    assert "Traceback" not in err


async def test_an_unreachable_service_exits_2(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = await spool("eval", suite_file(tmp_path, ALL_TEN), "--url", url)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: cannot reach Spool at {url}")
    assert "Traceback" not in err


async def test_on_a_terminal_it_shows_progress_then_a_table(stack: Api, tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            SPOOL, "eval", suite_file(tmp_path, TWO_BROKEN), "--url", stack.url,
            stdin=terminal, stdout=terminal, stderr=terminal,
            env={"PATH": "/usr/bin:/bin", "TERM": "xterm", "COLUMNS": "120"},
        )  # fmt: skip
        os.close(terminal)
        screen = b""
        while True:  # until the child closes the terminal (EIO on Linux)
            try:
                data = await asyncio.wait_for(asyncio.to_thread(os.read, controller, 65536), 60)
            except OSError:
                break
            if not data:
                break
            screen += data
        assert await asyncio.wait_for(proc.wait(), 60) == 1
    finally:
        os.close(controller)
    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", screen).decode()
    assert "eval" in text
    assert "0/2" in text  # the progress bar's count, drawn while the cases ran
    assert "pass fine" in text
    assert "FAIL looping" in text
    assert "1/2 passed (50%)" in text  # the table's title, then its rows
    assert re.search(r"looping\s*│\s*FAIL", text)
