"""A worker whose Redis pool is far smaller than the jobs it runs: every job runs once.

A worker waits for one of its pool's connections as long as it takes (`RedisClients`
with `pool_wait_s=None`): a full pool there is a busy or starved process, and an error
would make arq run the job again from the start (`job.retrying`, the work wasted). Here
`SPOOL_REDIS_MAX_CONNECTIONS=2` (raised to the worker's floor of 3: its pub/sub and its
stream writer keep one each, so one is left for everything else) serves 40 jobs at once: each ends
`completed` on its first attempt, with its events exact (dense seqs, the deltas making
up its output).
"""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.fakes.stack import other_db
from tests.helpers import TERMINAL, submit
from tests.procs import Api, Worker, service_env, started
from tests.sse import frames

pytestmark = pytest.mark.process

POOL_DB = 4
JOBS = 40
TEXT = " ".join(f"w{i}" for i in range(30))


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    url = other_db(redis_url, POOL_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return service_env(url, redis_max_connections="2", sse_ping_s="0.5")


@pytest.fixture
def api(env: dict[str, str], log_dir: Path) -> Iterator[Api]:
    api = Api({**env, "SPOOL_REDIS_MAX_CONNECTIONS": "8"}, log_dir).start()
    yield api
    api.stop()


@pytest.fixture
async def http(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client(read_s=120) as client:
        yield client


async def test_a_worker_with_a_tiny_pool_runs_each_job_once_and_exactly(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path
) -> None:
    worker = await started(Worker(env, log_dir, "--concurrency", str(JOBS)))
    try:
        params = {"text": TEXT, "tokens_per_second": 200, "ttft_ms": 0}
        accepted = [await submit(http, parameters=params) for _ in range(JOBS)]
        for job in accepted:
            async with http.stream("GET", job["events_url"]) as response:
                assert response.status_code == 200
                events = [f async for f in frames(response) if f.data is not None]
            kinds = [e.event for e in events]
            assert kinds[-1] in TERMINAL
            assert kinds[-1] == "job.completed", kinds
            assert "job.retrying" not in kinds
            started_event = next(e for e in events if e.event == "job.started")
            assert started_event.json["attempt"] == 1
            seqs = [e.json["seq"] for e in events]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            text = "".join(e.json["delta"] for e in events if e.event == "text.delta")
            assert text == events[-1].json["output_text"]
    finally:
        worker.stop()
