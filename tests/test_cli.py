"""The `spool` console script against the real stack: submit, tail, job, cancel, options."""

import asyncio
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import submit
from tests.procs import ROOT, Api, service_env, started, stopped
from tests.proxy import CuttingProxy
from tests.test_resume import long_text

pytestmark = pytest.mark.process

SPOOL = str(Path(sys.executable).parent / "spool")  # the console script of this venv
TEXT = long_text(120)
PARAMS = ["-p", f"text={json.dumps(TEXT)}", "-p", "thinking=let me think", "-p", "ttft_ms=10"]
PARAMS += ["-p", "tokens_per_second=300"]
SUMMARY = re.compile(r"\[(\d+) in / (\d+) out tokens · \$(\d+\.\d{6}) · (\d+\.\d\d) s\]")


async def spool(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        SPOOL,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", **(env or {})},
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


async def test_version_and_the_server_commands_real_help() -> None:
    code, out, _ = await spool("--version")
    assert (code, out) == (0, f"spool {importlib.metadata.version('spool')}\n")
    code, out, _ = await spool("api", "--help")
    assert code == 0
    assert all(
        opt in out for opt in ("--port", "--host", "--role", "[all|jobs|events]", "--allow-open")
    )
    code, out, _ = await spool("worker", "--help")
    assert code == 0
    assert "--concurrency" in out
    assert "--ready-file" in out
    code, out, _ = await spool("job", "--help")
    assert "SPOOL_URL" in out
    assert "SPOOL_API_KEY" in out


async def test_job_shows_the_record_and_cancel_of_a_finished_job_is_a_no_op(
    http: httpx.AsyncClient, session_id: str
) -> None:
    accepted = await submit(http, session_id=session_id, parameters={"text": "a b", "ttft_ms": 0})
    url = str(http.base_url)
    code, _, err = await spool("tail", session_id, "--job", accepted["job_id"], "--url", url)
    assert code == 0, err
    code, out, err = await spool("job", accepted["job_id"], env={"SPOOL_URL": url})
    assert code == 0, err
    record = json.loads(out)
    assert (record["job_id"], record["status"], record["output_text"]) == (
        accepted["job_id"],
        "completed",
        "a b",
    )
    assert record["usage"]["output_tokens"] == 2
    code, out, _ = await spool("cancel", accepted["job_id"], "--url", url)
    assert (code, json.loads(out)) == (0, {"job_id": accepted["job_id"], "status": "completed"})
    code, out, err = await spool("job", "job-nope", "--url", url)
    assert (code, out) == (2, "")
    assert "404 job_not_found" in err


async def test_cancel_stops_a_running_job(http: httpx.AsyncClient, session_id: str) -> None:
    slow = {"text": "word " * 400, "tokens_per_second": 20, "ttft_ms": 0}
    accepted = await submit(http, session_id=session_id, parameters=slow)
    code, out, err = await spool("cancel", accepted["job_id"], "--url", str(http.base_url))
    assert (code, json.loads(out)["status"]) == (0, "cancelling"), err
    code, out, _ = await spool(
        "tail", session_id, "--job", accepted["job_id"], "--url", str(http.base_url)
    )
    assert code == 1  # the followed job ended cancelled
    assert out.rstrip().endswith("[cancelled]")


async def test_api_key_from_the_option_or_the_environment(redis_url: str, log_dir: Path) -> None:
    api = await started(Api(service_env(redis_url, api_keys="acme:k-acme"), log_dir))
    try:
        async with httpx.AsyncClient(base_url=api.url, headers={"X-API-Key": "k-acme"}) as http:
            accepted = await submit(http, parameters={"text": "hi", "ttft_ms": 0})
        job = accepted["job_id"]
        code, _, err = await spool("job", job, "--url", api.url)
        assert code == 2
        assert "401" in err
        code, out, _ = await spool("job", job, "--url", api.url, "--api-key", "k-acme")
        assert (code, json.loads(out)["job_id"]) == (0, job)
        code, out, _ = await spool(
            "job", job, env={"SPOOL_URL": api.url, "SPOOL_API_KEY": "k-acme"}
        )
        assert (code, json.loads(out)["job_id"]) == (0, job)
    finally:
        await stopped(api)


async def test_a_closed_pipe_ends_quietly(stack: Api, tmp_path: Path) -> None:
    err_file = tmp_path / "err"
    cmd = (
        f"{SPOOL} submit hi -f --json --url {stack.url} -p text={shlex.quote(json.dumps(TEXT))}"
        f" -p tokens_per_second=2000 -p ttft_ms=0 2>{err_file} | head -3"
    )
    proc = await asyncio.create_subprocess_shell(
        cmd, stdout=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert len(out.decode().splitlines()) == 3
    err = err_file.read_text()
    assert re.fullmatch(r"job job-\w+ in session ses-\w+\n", err), err


HOSTILE = "safe \x1b]0;pwned\x07title \x1b[2J\x1b[31mred\x1b[0m \x9b2J\x07bell\rback\tok\n"


async def test_terminal_control_characters_from_the_model_are_stripped(stack: Api) -> None:
    params = ["-p", f"text={json.dumps(HOSTILE)}", "-p", "ttft_ms=0", "--url", stack.url]
    code, out, err = await spool("submit", "x", "-f", *params)
    assert code == 0, err
    assert out.startswith("safe title red 2Jbellback\tok\n"), repr(out)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out)
    code, out, _ = await spool("submit", "x", "-f", "--json", *params)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out)  # escaped in the JSON
    deltas = [json.loads(line).get("delta", "") for line in out.splitlines()]
    assert "".join(deltas) == HOSTILE  # the data itself is intact


def test_make_run_passes_args_to_spool_dev() -> None:
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "run", "ARGS=--port 8001 --workers 2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "/bin/spool dev --port 8001 --workers 2" in dry.stdout
