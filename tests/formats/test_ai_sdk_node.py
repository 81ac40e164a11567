"""The real `ai` npm package (pinned) against `POST /v1/ui/chat` and its reconnect route:
its DefaultChatTransport, AbstractChat and readUIMessageStream, in Node (the `ai_sdk`
fixture installs it; without node or npm the test fails, it is never skipped)."""

from pathlib import Path

import pytest

from tests.formats.node import run_node
from tests.procs import Api

pytestmark = pytest.mark.process


@pytest.mark.timeout(240)
def test_use_chat_survives_a_cut_and_a_reload(stack: Api, ai_sdk: Path, session_id: str) -> None:
    out = run_node("ai_sdk_chat.mjs", stack.url, str(ai_sdk), session_id)
    jobs = out["jobs"]
    assert [j["status"] for j in jobs] == ["completed"] * 3
    first, second, third = (j["output_text"] for j in jobs)

    # the first answer: cut mid-way (the SDK saw a network error), then resumed in place
    assert out["cut1"]["status"] == "error"
    partial = out["cut1"]["messages"][-1]
    assert partial["role"] == "assistant"
    assert partial["text"]
    assert first.startswith(partial["text"])
    assert partial["text"] != first
    assert out["resumed1"]["status"] == "ready"
    assert [(m["role"], m["text"]) for m in out["resumed1"]["messages"]] == [
        ("user", "first question"),
        ("assistant", first),
    ]
    assert out["resumed1"]["messages"][1]["id"] == jobs[0]["job_id"]

    # the second: cut, then a new chat (a reloaded page) with the saved messages resumes it
    assert out["cut2"]["status"] == "error"
    assert out["cut2"]["messages"][-1]["text"] != second
    assert out["resumed2"]["status"] == "ready"
    assert [(m["role"], m["text"]) for m in out["resumed2"]["messages"]] == [
        ("user", "first question"),
        ("assistant", first),
        ("user", "second question"),
        ("assistant", second),
    ]

    # after the end: 204 from the reconnect route, and resuming changes nothing
    assert out["reconnectStatus"] == 204
    assert out["afterEnd"] == {"status": "ready", "count": 4}

    # reasoning and a tool call: every chunk passes the SDK's schema
    assert out["third"]["status"] == "ready"
    # (the simulated model thinks and speaks in both steps, around the tool call)
    assert out["third"]["parts"] == [
        "step-start",
        *("reasoning", "text", "tool-calculator"),
        *("reasoning", "text"),
    ]
    replay = out["replay"]
    assert replay["rejected"] == []
    assert replay["types"][0] == "start"
    assert replay["types"][-1] == "finish"
    assert replay["text"] == third
    assert replay["id"] == jobs[2]["job_id"]
    # the only errors the chats reported are the two cuts
    assert len(out["errors"]) == 2, out["errors"]
    assert all("network connection lost" in e for e in out["errors"])
