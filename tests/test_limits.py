"""Limits (contract §4): active and running jobs per tenant, open streams per tenant, and
what one job may append; each over-limit answer is a 429 naming the limit."""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.helpers import follow_job, read_stream, submit, until
from tests.procs import Api, Worker, service_env

pytestmark = pytest.mark.process

SLOW = {"text": "slow " * 200, "tokens_per_second": 20, "ttft_ms": 0}
QUICK = {"text": "a b c", "tokens_per_second": 500, "ttft_ms": 0}
LIMITS = {
    "tenant_max_active_jobs": "3",
    "tenant_max_running": "1",
    "tenant_max_streams": "2",
    "job_max_events": "40",
    "job_max_bytes": "6000",
    "event_max_bytes": "600",
}
TENANTS = ("acme", "globex", "initech", "umbrella")


@pytest.fixture(scope="module")
def limited(redis_url: str, log_dir: Path) -> Iterator[Api]:
    env = service_env(
        redis_url,
        key_prefix="limitstest",
        api_keys=",".join(f"{t}:k-{t}" for t in TENANTS),
        sse_ping_s="0.5",
        **LIMITS,
    )
    worker = Worker(env, log_dir, "--concurrency", "8").start()
    api = Api(env, log_dir).start()
    yield api
    api.stop()
    worker.stop()


@pytest.fixture
async def tenants(limited: Api) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    timeout = httpx.Timeout(10.0, read=30.0)
    made = {
        t: httpx.AsyncClient(base_url=limited.url, headers={"X-API-Key": f"k-{t}"}, timeout=timeout)
        for t in TENANTS
    }
    yield made
    for client in made.values():
        await client.aclose()


async def status_of(http: httpx.AsyncClient, job: dict[str, Any]) -> str:
    status: str = (await http.get(f"/v1/jobs/{job['job_id']}")).json()["status"]
    return status


async def reaches(http: httpx.AsyncClient, job: dict[str, Any], wanted: str) -> None:
    async def there() -> bool:
        return await status_of(http, job) == wanted

    await until(there, f"job {job['job_id']} to be {wanted}")


def assert_429(response: httpx.Response, code: str) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == code
    assert int(response.headers["Retry-After"]) > 0


async def test_active_jobs_per_tenant(
    tenants: dict[str, httpx.AsyncClient], redis_url: str
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    jobs = [await submit(acme, parameters=SLOW) for _ in range(3)]
    refused = f"refused-{uuid.uuid4().hex}"
    body = {"input": "one more", "parameters": QUICK, "session_id": refused}
    over = await acme.post("/v1/jobs", json=body)
    assert_429(over, "too_many_active_jobs")
    assert "SPOOL_TENANT_MAX_ACTIVE_JOBS" in over.json()["error"]["message"]
    # refused before anything was written: the session does not exist, nothing is in Redis
    assert (await acme.get(f"/v1/sessions/{refused}")).status_code == 404
    assert redis.Redis.from_url(redis_url).keys(f"*{refused}*") == []
    # another tenant is not affected
    assert (await follow_job(globex, await submit(globex, parameters=QUICK)))[-1].event == (
        "job.completed"
    )
    for job in jobs:  # jobs that end stop counting
        await acme.post(f"/v1/jobs/{job['job_id']}/cancel")
    for job in jobs:
        await reaches(acme, job, "cancelled")
    again = await submit(acme, parameters=QUICK)
    assert (await follow_job(acme, again))[-1].event == "job.completed"


async def test_running_jobs_per_tenant_wait_without_taking_slots(
    tenants: dict[str, httpx.AsyncClient],
) -> None:
    initech, umbrella = tenants["initech"], tenants["umbrella"]
    first = await submit(initech, parameters=SLOW)
    await reaches(initech, first, "running")
    second = await submit(initech, parameters=QUICK)  # another session: only the cap holds it
    # the other tenant's job runs and ends while initech's second job waits its turn
    theirs = await submit(umbrella, parameters=QUICK)
    assert (await follow_job(umbrella, theirs))[-1].event == "job.completed"
    assert await status_of(initech, second) == "queued"
    await initech.post(f"/v1/jobs/{first['job_id']}/cancel")
    assert (await follow_job(initech, second))[-1].event == "job.completed"


async def test_open_streams_per_tenant(
    tenants: dict[str, httpx.AsyncClient], session_id: str
) -> None:
    acme = tenants["acme"]
    await follow_job(acme, await submit(acme, session_id=session_id, parameters=QUICK))
    url = f"/v1/sessions/{session_id}/events"
    async with acme.stream("GET", url) as one, acme.stream("GET", url) as two:
        assert one.status_code == two.status_code == 200
        assert_429(await acme.get(url), "too_many_streams")
        other = tenants["globex"]  # another tenant's streams are counted apart
        assert (await other.get(f"/v1/sessions/{session_id}/events")).status_code == 404

    async def slot_free() -> bool:  # closed streams give their slots back
        return (await read_stream(acme, url, max_events=1))[0] == 200

    await until(slot_free, "a stream slot to be free")


async def test_a_job_past_its_event_limit_fails_output_limit_keeping_its_output(
    tenants: dict[str, httpx.AsyncClient],
) -> None:
    http = tenants["globex"]
    job = await submit(http, parameters={**QUICK, "text": "w " * 100})
    events = await follow_job(http, job)
    assert len(events) == 41  # 40 events, then the terminal one
    failed = events[-1].json
    assert (events[-1].event, failed["error"]["code"]) == ("job.failed", "output_limit")
    deltas = "".join(e.json["delta"] for e in events if e.event == "text.delta")
    assert deltas
    assert failed["output_text"] == deltas
    assert failed["usage"]["output_tokens"] == len(deltas.split()), "the refused delta not counted"
    assert (await http.get(f"/v1/jobs/{job['job_id']}")).json()["error"]["code"] == "output_limit"


async def test_a_job_past_its_byte_limit_fails_output_limit(
    tenants: dict[str, httpx.AsyncClient],
) -> None:
    http = tenants["globex"]
    word = "x" * 90  # one delta of ~200 bytes per word: 6000 bytes after ~28
    job = await submit(http, parameters={**QUICK, "text": f"{word} " * 60})
    events = await follow_job(http, job)
    failed = events[-1].json
    assert (events[-1].event, failed["error"]["code"]) == ("job.failed", "output_limit")
    assert len(events) < 40
    assert failed["output_text"] == "".join(
        e.json["delta"] for e in events if e.event == "text.delta"
    )


async def test_a_huge_delta_is_split_into_deltas_that_add_up(
    tenants: dict[str, httpx.AsyncClient],
) -> None:
    http = tenants["globex"]
    text = "y" * 1000  # one token, one chunk: split at 600 bytes of JSON
    events = await follow_job(http, await submit(http, parameters={**QUICK, "text": text}))
    deltas = [e for e in events if e.event == "text.delta"]
    assert len(deltas) >= 2
    assert all(len(e.data or "") <= 600 for e in deltas)
    assert "".join(e.json["delta"] for e in deltas) == events[-1].json["output_text"] == text
