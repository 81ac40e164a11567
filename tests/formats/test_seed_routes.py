"""The grampus-style `POST /stream` and the generation-API-style
`POST /api/v1/generate/stream`, with those systems' field names, under API keys."""

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.formats.sse_client import keys, read_frames
from tests.procs import Api, Worker, service_env

pytestmark = pytest.mark.process

KEY = "gen-key"
WORDS = " ".join(f"w{i}" for i in range(30))
PARAMS = {"text": WORDS, "ttft_ms": 0, "tokens_per_second": 100, "thinking": "let me see"}
AGENTS = f"""
[agents.counter]
model = "simulated"
parameters = {{ text = "{WORDS}", ttft_ms = 0, tokens_per_second = 100 }}
"""


@pytest.fixture(scope="module")
def keyed(redis_url: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    agents = tmp_path_factory.mktemp("agents") / "agents.toml"
    agents.write_text(AGENTS)
    env = service_env(redis_url, api_keys=f"acme:{KEY}", agents_file=str(agents), sse_ping_s="0.5")
    worker = Worker(env, log_dir).start()
    api = Api(env, log_dir).start()
    yield api
    api.stop()
    worker.stop()


@pytest.fixture
async def http(keyed: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with keyed.client(headers={"X-API-Key": KEY}) as client:
        yield client


async def output_of(http: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    session = (await http.get(f"/v1/sessions/{session_id}")).json()
    job: dict[str, Any] = session["jobs"][-1]
    return job


async def test_grampus_stream(http: httpx.AsyncClient, session_id: str) -> None:
    body = {"agent_id": "counter", "input": "count", "session_id": session_id}
    response, frames = await read_frames(http, "POST", "/stream", json=body)
    assert response.status_code == 200, response.text
    chunks = [json.loads(f.data or "") for f in frames]
    assert all({"delta", "is_final", "step", "tool_call"} <= c.keys() for c in chunks)
    assert [c["is_final"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    job = await output_of(http, session_id)
    assert "".join(c["delta"] for c in chunks) == job["output_text"] == WORDS
    usage = chunks[-1]["token_usage"]
    assert usage["output_tokens"] == 30
    assert usage["total_tokens"] == usage["input_tokens"] + 30
    assert "cost_usd" in usage
    assert response.headers["x-spool-session-id"] == session_id
    # resumable on the events route in the same format
    url, params = (
        f"/v1/sessions/{session_id}/events",
        {"format": "grampus", "job_id": job["job_id"]},
    )
    cut = frames[len(frames) // 2].id
    assert cut is not None
    _, rest = await read_frames(http, "GET", url, params=params, headers={"Last-Event-ID": cut})
    assert keys(rest) == keys(frames[len(frames) // 2 + 1 :])


async def test_grampus_stream_needs_a_key_and_a_known_agent(keyed: Api) -> None:
    body = {"agent_id": "counter", "input": "count"}
    async with httpx.AsyncClient(base_url=keyed.url, timeout=10) as anonymous:
        assert (await anonymous.post("/stream", json=body)).status_code == 401
        bad = await anonymous.post(
            "/stream", json={**body, "agent_id": "ghost"}, headers={"X-API-Key": KEY}
        )
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "unknown_model"


async def test_generate_stream(http: httpx.AsyncClient, session_id: str) -> None:
    body = {
        "service_name": "docs-helper",
        "model_name": "simulated",
        "input": [
            {"type": "text", "name": "system", "content": "Be brief."},
            {"type": "text", "name": "prompt", "content": "count"},
        ],
        "parameters": PARAMS,
        "history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        "session_id": session_id,
    }
    response, frames = await read_frames(http, "POST", "/api/v1/generate/stream", json=body)
    assert response.status_code == 200, response.text
    chunks = [json.loads(f.data or "") for f in frames]
    *parts, final = chunks
    assert all(p.keys() == {"type", "name", "content", "done", "index", "is_final"} for p in parts)
    assert [p["index"] for p in parts] == list(range(len(parts)))
    thinking = [p for p in parts if p["name"] == "thinking"]
    output = [p for p in parts if p["name"] == "output"]
    assert "".join(p["content"] for p in thinking) == "let me see"
    assert thinking[-1]["done"] is True
    assert output[-1]["done"] is True
    assert output[-1]["is_final"] is True
    job = await output_of(http, session_id)
    assert "".join(p["content"] for p in output) == job["output_text"] == WORDS
    assert job["metadata"] == {"service_name": "docs-helper"}
    assert final["final"] is True
    assert final["usage"] == job["usage"]
    assert final.keys() >= {"usage", "cost", "warnings"}


async def test_generate_stream_refuses_an_input_without_text(http: httpx.AsyncClient) -> None:
    body = {"model_name": "simulated", "input": [{"type": "image", "name": "x", "content": "..."}]}
    response = await http.post("/api/v1/generate/stream", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_field"
