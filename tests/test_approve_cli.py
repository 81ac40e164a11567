"""Tool approvals from the client side against the real stack: the SDK's `approve()`,
`spool approve`, and `spool submit --follow` asking y/n on a terminal (a pty) or
printing the commands when stdin is not one."""

import asyncio
import json
import os
import pty
import re

import msgspec
import pytest

from spool_client import ApprovalView, ClientError, SpoolClient, StreamEvent, SyncSpoolClient
from tests.procs import Api
from tests.test_cli import SPOOL, spool

pytestmark = pytest.mark.process

CALL = {"name": "calculator", "arguments": {"expression": "6*7"}}
PARAMS = {"text": "Let me compute.", "tool_calls": [CALL], "ttft_ms": 0, "tokens_per_second": 500}
FLAGS = ["--tools", "calculator", "--require-approval", "-p", f"tool_calls={json.dumps([CALL])}"]
FLAGS += ["-p", 'text="Let me compute."', "-p", "ttft_ms=0", "-p", "tokens_per_second=500"]
ENV = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1"}


async def test_sdk_approve_decides_a_waiting_call(stack: Api) -> None:
    decided: list[ApprovalView] = []
    async with SpoolClient(stack.url) as client:

        async def decide(event: StreamEvent) -> None:
            if event.type == "tool.approval_requested":
                args = {"expression": "6*6"}  # run it edited
                decided.append(
                    await client.approve(
                        event.data["job_id"], event.data["call_id"], True, None, args
                    )
                )

        result = await client.run(
            "hi", tools=["calculator"], require_approval=True, parameters=PARAMS, on_event=decide
        )
        job_id = result.job_id or ""
        with pytest.raises(ClientError) as twice:
            await client.approve(job_id, "call_0")
        with pytest.raises(ClientError) as unknown:
            await client.approve(job_id, "no-such-call", approved=False, reason="x")
    assert decided == [ApprovalView(call_id="call_0", approved=True)]
    assert result.status == "completed"
    assert [(a.call_id, a.name) for a in result.approvals_requested] == [("call_0", "calculator")]
    assert [(a.call_id, a.approved) for a in result.approvals] == [("call_0", True)]
    assert result.pending_approvals == []
    assert [(r.name, r.output) for r in result.tool_results] == [("calculator", "36")]
    assert (twice.value.status, unknown.value.status) == (409, 404)


def test_sync_approve_rejects_with_a_reason(stack: Api) -> None:
    with SyncSpoolClient(stack.url) as client:
        accepted = client.submit(
            "hi", tools=["calculator"], require_approval=True, parameters=PARAMS
        )
        events = client.events(accepted.session_id, accepted.job_id)
        asked = next(e for e in events if e.type == "tool.approval_requested")
        events.close()
        answer = msgspec.to_builtins(
            client.approve(accepted.job_id, asked.data["call_id"], False, "not today")
        )
        result = client.collect(accepted.session_id, accepted.job_id)
    assert answer == {"call_id": "call_0", "approved": False}
    assert [(a.approved, a.reason) for a in result.approvals] == [(False, "not today")]
    assert [r.is_error for r in result.tool_results] == [True]
    assert "not today" in result.tool_results[0].output
    assert result.status == "completed"


async def read_until(stream: asyncio.StreamReader, pattern: str) -> str:
    """Read `stream` until what was read matches `pattern` (a prompt ends no line)."""
    seen = ""
    while not re.search(pattern, seen):
        data = await asyncio.wait_for(stream.read(4096), 60)
        assert data, f"the stream ended before {pattern!r}: {seen!r}"
        seen += data.decode()
    return seen


async def test_submit_follow_asks_y_or_n_on_a_terminal(stack: Api) -> None:
    for answer, shown in ((b"y\n", "← calculator: 42"), (b"n\n", "rejected at the terminal")):
        controller, terminal = pty.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                SPOOL, "submit", "hi", "-f", "--url", stack.url, *FLAGS,
                stdin=terminal, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=ENV,
            )  # fmt: skip
            assert proc.stderr is not None
            err = await read_until(proc.stderr, r"Approve tool call calculator\(")
            assert '{"expression": "6*7"}' in err
            os.write(controller, answer)
            out, rest = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            os.close(controller)
            os.close(terminal)
        assert proc.returncode == 0, rest
        assert shown in out.decode()
        assert "[call_0 " in out.decode()


async def test_without_a_terminal_submit_prints_how_to_decide_and_spool_approve_does(
    stack: Api,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        SPOOL, "submit", "hi", "-f", "--url", stack.url, *FLAGS,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=ENV,
    )  # fmt: skip
    assert proc.stderr is not None
    err = await read_until(proc.stderr, r"reject: .*\n")
    job = re.search(r"job (job-\w+) in session", err)
    assert job is not None
    assert "[approval needed] calculator(" in err
    assert f"approve: spool approve {job[1]} call_0" in err
    code, out, approve_err = await spool(
        "approve", job[1], "call_0", "--arguments", '{"expression": "7*7"}', "--url", stack.url
    )
    assert (code, json.loads(out)) == (0, {"call_id": "call_0", "approved": True}), approve_err
    followed, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    assert "← calculator: 49" in followed.decode()
    code, _, err = await spool("approve", job[1], "call_0", "--reject", "--url", stack.url)
    assert code == 2
    assert "409 already_decided" in err
    code, _, err = await spool("approve", job[1], "nope", "--url", stack.url)
    assert code == 2
    assert "404" in err
    code, _, err = await spool(
        "approve", job[1], "call_0", "--arguments", "[1]", "--url", stack.url
    )
    assert code == 2
    assert "must be a JSON object" in err
