"""`GET /metrics` on the API and on the worker's `SPOOL_WORKER_METRICS_PORT` (contract §11),
scraped from the real processes before and after real jobs."""

import asyncio
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import follow_job, submit
from tests.procs import Api

pytestmark = pytest.mark.process

FAST = {"text": "one two three four", "ttft_ms": 0, "tokens_per_second": 1000}


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a `/metrics` page: (name, sorted labels) → value."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def worker_metrics_url(stack: Api) -> str:
    return f"http://127.0.0.1:{stack.env['SPOOL_WORKER_METRICS_PORT']}/metrics"


async def test_a_job_moves_the_api_and_worker_metrics(
    http: httpx.AsyncClient, stack: Api, session_id: str
) -> None:
    api_before = await scrape(f"{stack.url}/metrics")
    worker_before = await scrape(worker_metrics_url(stack))

    events = await follow_job(
        http, await submit(http, session_id=session_id, model="simulated", parameters=FAST)
    )
    assert events[-1].event == "job.completed"

    api = await scrape(f"{stack.url}/metrics")
    assert (
        value(api, "spool_jobs_submitted_total")
        >= value(api_before, "spool_jobs_submitted_total") + 1
    )
    assert value(api, "spool_events_delivered_total") >= value(
        api_before, "spool_events_delivered_total"
    ) + len(events)
    assert ("spool_queue_depth", ()) in api
    assert ("process_resident_memory_bytes", ()) in api

    worker = await scrape(worker_metrics_url(stack))

    def moved(name: str, **labels: str) -> float:
        return value(worker, name, **labels) - value(worker_before, name, **labels)

    assert moved("spool_jobs_finished_total", status="completed") >= 1
    assert moved("spool_events_appended_total") >= len(events) - 1  # job.queued: the API's
    assert moved("spool_time_to_first_token_seconds_count") >= 1
    assert moved("spool_job_duration_seconds_count", status="completed") >= 1
    assert moved("spool_redis_append_seconds_count") >= 1
    assert ("spool_jobs_running", ()) in worker


async def test_open_streams_and_running_jobs_are_gauged(
    http: httpx.AsyncClient, stack: Api, session_id: str
) -> None:
    slow = {"text": "wait", "ttft_ms": 60_000}
    accepted = await submit(http, session_id=session_id, parameters=slow)
    deadline = time.monotonic() + 20
    while value(await scrape(worker_metrics_url(stack)), "spool_jobs_running") < 1:
        assert time.monotonic() < deadline, "the worker never reported the job running"
        await asyncio.sleep(0.05)
    async with http.stream("GET", accepted["events_url"]) as response:
        assert response.status_code == 200
        # keep the iterator referenced: a dropped one is finalized, which hangs up
        chunks = response.aiter_bytes()
        head = b""
        while b"event: job.queued" not in head:  # an event: the stream follows the session
            head += await anext(chunks)
        api = await scrape(f"{stack.url}/metrics")
        assert value(api, "spool_event_streams_open") >= 1
        await chunks.aclose()
    reply = await http.post(f"/v1/jobs/{accepted['job_id']}/cancel")
    assert reply.status_code in (200, 202)
    await follow_job(http, accepted)


async def test_a_job_waiting_for_approval_is_gauged(http: httpx.AsyncClient, stack: Api) -> None:
    call = {"name": "calculator", "arguments": {"expression": "6 * 7"}}
    asks = {**FAST, "text": "Let me compute.", "tool_calls": [call]}
    accepted = await submit(http, tools=["calculator"], require_approval=True, parameters=asks)
    job_url = f"/v1/jobs/{accepted['job_id']}"
    deadline = time.monotonic() + 30
    while (await http.get(job_url)).json()["status"] != "awaiting_approval":
        assert time.monotonic() < deadline, "the job never waited for approval"
        await asyncio.sleep(0.05)
    assert value(await scrape(f"{stack.url}/metrics"), "spool_approvals_waiting") >= 1
    assert value(await scrape(worker_metrics_url(stack)), "spool_approvals_waiting") >= 1
    assert (await http.post(f"{job_url}/cancel")).status_code in (200, 202)
    await follow_job(http, accepted)


async def test_queue_depth_counts_jobs_no_worker_took(lone_api: Api) -> None:
    async with httpx.AsyncClient(base_url=lone_api.url, timeout=10) as http:
        before = value(await scrape(f"{lone_api.url}/metrics"), "spool_queue_depth")
        await submit(http, input="nobody runs this")
        await submit(http, input="nor this")
        after = value(await scrape(f"{lone_api.url}/metrics"), "spool_queue_depth")
    assert after == before + 2
