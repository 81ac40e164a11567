"""The real `ai` npm package (pinned) against `POST /v1/ui/chat` and its reconnect route:
its DefaultChatTransport, AbstractChat and readUIMessageStream, in Node.

npm installs the package from the registry into a git-ignored cache (`.cache/ai-sdk/`)
the first time. Without node or npm this test FAILS: it is never skipped.
"""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.procs import Api

AI_VERSION = "7.0.173"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "ai-sdk"
SCRIPT = Path(__file__).with_name("ai_sdk_chat.mjs")


def installed_version() -> str | None:
    manifest = CACHE / "node_modules" / "ai" / "package.json"
    if not manifest.exists():
        return None
    version: str = json.loads(manifest.read_text())["version"]
    return version


@pytest.fixture(scope="module")
def ai_sdk() -> Path:
    """The folder whose node_modules holds `ai` at the pinned version."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.fail("node and npm are needed to test the AI SDK backend (not skipped)")
    if installed_version() != AI_VERSION:
        CACHE.mkdir(parents=True, exist_ok=True)
        manifest = {"private": True, "dependencies": {"ai": AI_VERSION}}
        (CACHE / "package.json").write_text(json.dumps(manifest))
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CACHE,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    assert installed_version() == AI_VERSION
    return CACHE


def run_chat(stack: Api, ai_dir: Path, chat_id: str) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(SCRIPT), stack.url, str(ai_dir), chat_id],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, f"node failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(240)
def test_use_chat_survives_a_cut_and_a_reload(stack: Api, ai_sdk: Path, session_id: str) -> None:
    out = run_chat(stack, ai_sdk, session_id)
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
