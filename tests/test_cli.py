"""`spool submit --follow` and `spool tail`: the real console script against the real stack."""

import asyncio
import json
import re
import sys
from pathlib import Path

import httpx

from tests.helpers import submit
from tests.procs import Api
from tests.proxy import CuttingProxy
from tests.test_resume import long_text

SPOOL = str(Path(sys.executable).parent / "spool")  # the console script of this venv
TEXT = long_text(120)
PARAMS = ["-p", f"text={json.dumps(TEXT)}", "-p", "thinking=let me think", "-p", "ttft_ms=10"]
PARAMS += ["-p", "tokens_per_second=300"]
SUMMARY = re.compile(r"\[(\d+) in / (\d+) out tokens · \$(\d+\.\d{6}) · (\d+\.\d\d) s\]")


async def spool(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        SPOOL,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_submit_follow_prints_the_answer_through_dropped_connections(stack: Api) -> None:
    cuts = [900, 2500, 1200, 4000]
    async with CuttingProxy(stack.port, cuts) as proxy:
        code, out, err = await spool("submit", "hello", "--follow", "--url", proxy.url, *PARAMS)
    assert code == 0, err
    assert proxy.cut == len(cuts)
    assert TEXT.endswith("\n")  # so the summary line follows it directly
    assert out.startswith(f"let me think\n{TEXT}"), out[:300]
    last = out[len(f"let me think\n{TEXT}") :]
    match = SUMMARY.fullmatch(last.rstrip("\n"))
    assert match is not None, last
    assert int(match[2]) == len(TEXT.split()) + 3  # "let me think"
    assert re.fullmatch(r"job job-\w+ in session ses-\w+\n", err)


async def test_submit_follow_json_is_one_event_per_line(stack: Api) -> None:
    async with CuttingProxy(stack.port, [1500, 700]) as proxy:
        code, out, _ = await spool("submit", "hi", "-f", "--json", "--url", proxy.url, *PARAMS)
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["type"] == "job.queued"
    assert events[-1]["type"] == "job.completed"
    assert [e["seq"] for e in events] == list(range(len(events)))
    ids = [tuple(map(int, e["id"].split("-"))) for e in events]
    assert ids == sorted(set(ids))
    assert "".join(e["delta"] for e in events if e["type"] == "text.delta") == TEXT


async def test_tail_prints_a_finished_job_then_stops(
    http: httpx.AsyncClient, session_id: str
) -> None:
    accepted = await submit(http, session_id=session_id, parameters={"text": "one two three"})
    url = str(http.base_url)
    code, out, _ = await spool("tail", session_id, "--job", accepted["job_id"], "--url", url)
    assert code == 0
    header, text, summary = out.splitlines()
    assert header == f"── job {accepted['job_id']} (simulated) ──"
    assert text == "one two three"
    assert SUMMARY.fullmatch(summary)
    code, out, err = await spool("tail", "no-such-session", "--url", url)
    assert (code, out) == (2, "")
    assert "404 session_not_found" in err
