"""The queue Redis behind Sentinel: the primary dies, Sentinel promotes the replica, and
jobs submitted after the failover complete on the same API and worker processes."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spool.shared.sentinel import BadSentinelUrl, SentinelUrl, parse_sentinel_url
from tests.conftest import STACK_SETTINGS
from tests.helpers import follow_job
from tests.procs import Api, Worker, service_env
from tests.topology import LocalSentinel

pytestmark = pytest.mark.process


def test_sentinel_urls_parse_and_bad_ones_are_refused() -> None:
    assert parse_sentinel_url("redis+sentinel://h1:26379,h2:26380/spoolq/2") == SentinelUrl(
        sentinels=[("h1", 26379), ("h2", 26380)], master="spoolq", db=2
    )
    with_auth = parse_sentinel_url("redis+sentinel://u:p%40ss@h1:26379/m")
    assert (with_auth.username, with_auth.password, with_auth.db) == ("u", "p@ss", 0)
    for bad in (
        "redis+sentinel://h1:26379",  # no master
        "redis+sentinel:///m/0",  # no sentinel
        "redis+sentinel://h1/m/0",  # no port
        "redis+sentinel://h1:26379/m/x",  # db not a number
    ):
        with pytest.raises(BadSentinelUrl):
            parse_sentinel_url(bad)


async def submit_until_accepted(http: httpx.AsyncClient, within_s: float) -> dict[str, Any]:
    """POST a job, retrying the 503s an API answers while its Redis fails over."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        response = await http.post("/v1/jobs", json={"input": "hi", "parameters": {"text": "ok"}})
        if response.status_code == 202:
            accepted: dict[str, Any] = response.json()
            return accepted
        assert response.status_code == 503, response.text
        assert asyncio.get_running_loop().time() < deadline, "never accepted after failover"
        await asyncio.sleep(0.1)


@pytest.fixture
def sentinel_stack(
    tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[tuple[LocalSentinel, Api]]:
    """Primary, replica and Sentinel, and an API and a worker on them (stopped by the
    fixture, so a failing test leaves nothing behind)."""
    with LocalSentinel(tmp_path_factory.mktemp("sentinel")) as topology:
        env = service_env(topology.url, **STACK_SETTINGS)
        procs: list[Api | Worker] = []
        try:
            procs.append(Worker(env, log_dir).start())
            api = Api(env, log_dir).start()
            procs.append(api)
            yield topology, api
        finally:
            for proc in procs:
                proc.stop()


@pytest.mark.timeout(120)
async def test_jobs_submitted_after_a_failover_complete(
    sentinel_stack: tuple[LocalSentinel, Api],
) -> None:
    topology, api = sentinel_stack
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        before = await submit_until_accepted(http, 10)
        assert (await follow_job(http, before))[-1].event == "job.completed"
        old = topology.primary_port()
        topology.primary.kill()
        deadline = asyncio.get_running_loop().time() + 60
        while topology.primary_port() == old:  # Sentinel promotes the replica
            assert asyncio.get_running_loop().time() < deadline, "no failover"
            await asyncio.sleep(0.1)
        assert topology.primary_port() == topology.replica.port
        for _ in range(3):
            after = await submit_until_accepted(http, 30)
            assert (await follow_job(http, after))[-1].event == "job.completed"
