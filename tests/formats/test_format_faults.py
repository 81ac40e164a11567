"""A worker SIGKILLed mid-answer, seen through the AI SDK format: the live stream goes on
over the retry (`reset-step` drops the void attempt), and the real `ai` package builds
exactly the job's output from it. Own Redis and processes, as tests/test_faults.py."""

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from spool.cli.embedded import EmbeddedRedis
from tests.formats.node import run_node
from tests.formats.sse_client import keys, read_frames
from tests.procs import Api, Worker, service_env
from tests.sse import frames

pytestmark = pytest.mark.process

TEXT = " ".join(f"w{i}" for i in range(120)) + " end"
SLOW = {"text": TEXT, "tokens_per_second": 20, "ttft_ms": 0}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with EmbeddedRedis(tmp_path_factory.mktemp("format-faults"), appendonly=False) as server:
        yield service_env(server.url, lease_s="2", heartbeat_s="0.3", sse_ping_s="0.5")


@pytest.fixture(scope="module")
def api(env: dict[str, str], log_dir: Path) -> Iterator[Api]:
    api = Api(env, log_dir).start()
    yield api
    api.stop()


@pytest.fixture
async def http(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client(read_s=60) as c:
        yield c


@pytest.mark.timeout(180)
async def test_ai_sdk_stream_over_a_lost_worker(
    http: httpx.AsyncClient, api: Api, env: dict[str, str], log_dir: Path, ai_sdk: Path
) -> None:
    doomed = Worker(env, log_dir).start()
    replacement: Worker | None = None
    try:
        body = {"input": "count", "model": "simulated", "parameters": SLOW}
        live: list[tuple[str | None, str | None, str | None]] = []
        async with http.stream("POST", "/v1/stream?format=ai-sdk", json=body) as response:
            job_id = response.headers["x-spool-job-id"]
            session_id = response.headers["x-spool-session-id"]
            async for frame in frames(response):
                live.append((frame.id, frame.event, frame.data))
                deltas = sum('"text-delta"' in (d or "") for _, _, d in live)
                if deltas == 5 and replacement is None:
                    doomed.signal(signal.SIGKILL)  # kill first, then start the next worker
                    replacement = await asyncio.to_thread(Worker(env, log_dir).start)
        chunks = [json.loads(d) for _, _, d in live if d and d != "[DONE]"]
        types = [c["type"] for c in chunks]
        assert "reset-step" in types
        assert types[-1] == "finish"
        job = (await http.get(f"/v1/jobs/{job_id}")).json()
        assert (job["status"], job["attempt"], job["output_text"]) == ("completed", 2, TEXT)

        url = f"/v1/sessions/{session_id}/events"
        params = {"job_id": job_id, "format": "ai-sdk"}
        _, replay = await read_frames(http, "GET", url, params=params)
        assert keys(replay) == [k for k in live if k[2] is not None]
        built = run_node(
            "ai_sdk_replay.mjs",
            f"{api.url}{url}?job_id={job_id}&format=ai-sdk",
            str(ai_sdk),
        )
        assert built["rejected"] == []
        assert built["text"] == TEXT
    finally:
        for worker in (doomed, replacement):
            if worker is not None:
                worker.stop()
