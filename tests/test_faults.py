"""Faults with real processes: workers SIGKILLed and SIGTERMed mid-stream, Redis stopped and
restarted mid-stream, the API stopped under open streams, jobs that waited too long.

These tests own their Redis (embedded, append-only) and their processes.
"""

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

from spool.cli.embedded import EmbeddedRedis
from spool.shared.keys import Keys
from tests.helpers import TERMINAL, submit
from tests.procs import Api, Worker, service_env, started, until
from tests.sse import Frame, frames

pytestmark = pytest.mark.process

FAULT_SETTINGS = {"lease_s": "2", "heartbeat_s": "0.3", "sse_ping_s": "0.5", "sse_retry_ms": "100"}
TEXT = " ".join(f"w{i}" for i in range(120)) + " end"
# ~6 s: long enough to start a second worker (seconds on a loaded machine) mid-job
SLOW = {"text": TEXT, "tokens_per_second": 20, "ttft_ms": 0}


@pytest.fixture(scope="module")
def fault_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("fault-redis"), appendonly=True) as server:
        yield server


@pytest.fixture
def env(fault_redis: EmbeddedRedis) -> dict[str, str]:
    client = redis.Redis.from_url(fault_redis.url)
    client.flushdb()
    client.close()
    return service_env(fault_redis.url, **FAULT_SETTINGS)


@pytest.fixture
def api(env: dict[str, str], log_dir: Path) -> Iterator[Api]:
    api = Api(env, log_dir).start()
    yield api
    api.stop()


@pytest.fixture
async def http(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client(read_s=60) as client:
        yield client


@pytest.fixture
def workers(env: dict[str, str], log_dir: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


async def follow(
    http: httpx.AsyncClient, url: str, on_event: "asyncio.Queue[Frame] | None" = None
) -> list[Frame]:
    """Follow a job to its terminal event over ONE connection, resuming only if it drops."""
    events: list[Frame] = []
    while not events or events[-1].event not in TERMINAL:
        headers = {"Last-Event-ID": events[-1].id or ""} if events else {}
        try:
            async with http.stream("GET", url, headers=headers) as response:
                if response.status_code == 503:
                    await asyncio.sleep(0.2)  # back-off between reconnects, not synchronisation
                    continue
                assert response.status_code == 200
                async for frame in frames(response):
                    if frame.event:
                        events.append(frame)
                        if on_event is not None:
                            on_event.put_nowait(frame)
                        if frame.event in TERMINAL:
                            break
        except httpx.TransportError:
            await asyncio.sleep(0.2)
    return events


async def wait_events(queue: "asyncio.Queue[Frame]", kind: str, count: int) -> None:
    seen = 0
    async with asyncio.timeout(30):
        while seen < count:
            seen += (await queue.get()).event == kind


def check_reconstruction(events: list[Frame], expected_text: str) -> None:
    """No duplicate, no gap in seq; text after the last job.retrying is the output."""
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))
    assert [e.json["seq"] for e in events] == list(range(len(events)))
    last_retry = max((i for i, e in enumerate(events) if e.event == "job.retrying"), default=-1)
    text = "".join(e.json["delta"] for e in events[last_retry + 1 :] if e.event == "text.delta")
    assert events[-1].event == "job.completed"
    assert text == events[-1].json["output_text"] == expected_text


async def kill_mid_stream(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> tuple[dict[str, str], list[Frame]]:
    """A job streams on one worker, which is SIGKILLed; then a second worker starts (kill
    first: a replacement that starts late, under load, cannot see the job finish). The
    job's events, read over one connection from before the kill to the terminal event."""
    doomed = await started(Worker(env, log_dir))
    workers.append(doomed)
    accepted = await submit(http, parameters=SLOW)
    seen: asyncio.Queue[Frame] = asyncio.Queue()
    reader = asyncio.create_task(follow(http, accepted["events_url"], seen))
    await wait_events(seen, "text.delta", 5)
    doomed.signal(signal.SIGKILL)
    await until(lambda: not doomed.alive(), 10, "the worker to die")
    workers.append(await started(Worker(env, log_dir)))
    return accepted, await asyncio.wait_for(reader, 60)


async def test_sigkilled_worker_job_runs_again_elsewhere(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    accepted, events = await kill_mid_stream(http, env, log_dir, workers)
    retry = next(e for e in events if e.event == "job.retrying")
    assert retry.json["attempt"] == 2
    assert retry.json["reason"] == "worker_lost"
    check_reconstruction(events, TEXT)
    job = (await http.get(f"/v1/jobs/{accepted['job_id']}")).json()
    assert (job["status"], job["attempt"], job["output_text"]) == ("completed", 2, TEXT)


async def test_sigterm_lets_a_short_job_finish_and_hands_a_long_one_back(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    leaving = await started(Worker({**env, "SPOOL_SHUTDOWN_GRACE_S": "1"}, log_dir))
    workers.append(leaving)
    short = await submit(http, parameters={**SLOW, "text": "a b c", "tokens_per_second": 10})
    long = await submit(http, parameters=SLOW)
    seen: asyncio.Queue[Frame] = asyncio.Queue()
    long_reader = asyncio.create_task(follow(http, long["events_url"], seen))
    short_reader = asyncio.create_task(follow(http, short["events_url"]))
    await wait_events(seen, "text.delta", 5)
    leaving.signal(signal.SIGTERM)
    short_events = await asyncio.wait_for(short_reader, 30)
    assert [e.event for e in short_events].count("job.started") == 1, "finished within grace"
    assert short_events[-1].event == "job.completed"
    await until(lambda: not leaving.alive(), 30, "the worker to exit after its grace period")
    assert "run_job" in leaving.output()
    workers.append(await started(Worker(env, log_dir)))
    events = await asyncio.wait_for(long_reader, 60)
    retry = next(e for e in events if e.event == "job.retrying")
    assert retry.json["reason"] == "worker_shutdown"
    check_reconstruction(events, TEXT)


async def test_redis_stopped_and_restarted_mid_stream_loses_nothing(
    http: httpx.AsyncClient,
    fault_redis: EmbeddedRedis,
    workers: list[Worker],
    env: dict[str, str],
    log_dir: Path,
) -> None:
    workers.append(await started(Worker(env, log_dir)))
    accepted = await submit(http, parameters=SLOW)
    seen: asyncio.Queue[Frame] = asyncio.Queue()
    reader = asyncio.create_task(follow(http, accepted["events_url"], seen))
    await wait_events(seen, "text.delta", 10)
    await asyncio.to_thread(fault_redis.stop)  # SIGTERM: redis-server flushes its append-only file
    try:
        down = await http.post("/v1/jobs", json={"input": "x"})
        assert down.status_code == 503
        assert down.headers["retry-after"]
        assert down.json()["error"]["code"] == "redis_unavailable"
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/healthz")).status_code == 200
    finally:
        await asyncio.to_thread(fault_redis.start)

    async def ready() -> bool:
        return (await http.get("/readyz")).status_code == 200

    await until(ready, 30, "readiness")
    events = await asyncio.wait_for(reader, 60)
    check_reconstruction(events, TEXT)
    assert (await http.get(f"/v1/jobs/{accepted['job_id']}")).json()["status"] == "completed"
    again = await submit(http, parameters={**SLOW, "text": "back again"})
    assert (await follow(http, again["events_url"]))[-1].json["output_text"] == "back again"


async def test_sigterm_to_the_api_ends_open_streams_promptly(
    env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    api = await started(Api(env, log_dir))
    async with httpx.AsyncClient(base_url=api.url, timeout=httpx.Timeout(10, read=60)) as http:
        await submit(http, session_id="quiet", parameters={**SLOW, "text": "hi"})
        opened, ended = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with http.stream("GET", "/v1/sessions/quiet/events") as response:
                async for _ in frames(response):
                    opened.set()
            ended.set()

        holder = asyncio.create_task(hold())
        await asyncio.wait_for(opened.wait(), 10)
        api.signal(signal.SIGTERM)
        await asyncio.wait_for(ended.wait(), 10)  # the stream ended; no 5 s graceful-timeout wait
        await holder
    await until(lambda: not api.alive(), 10, "the API to exit")


async def test_a_job_that_waited_too_long_fails_expired(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    accepted = await submit(http, parameters=SLOW)  # no worker is running yet
    loop = asyncio.get_running_loop()
    start = loop.time()
    await until(lambda: loop.time() - start > 0.6, 5, "the job to wait longer than allowed")
    workers.append(await started(Worker({**env, "SPOOL_QUEUE_MAX_WAIT_S": "0.5"}, log_dir)))
    events = await follow(http, accepted["events_url"])
    assert events[-1].event == "job.failed"
    assert events[-1].json["error"]["code"] == "expired"
    assert "job.started" not in [e.event for e in events]


async def test_queued_ids_whose_payload_is_gone_or_unreadable_leave_the_queue(
    http: httpx.AsyncClient,
    env: dict[str, str],
    fault_redis: EmbeddedRedis,
    log_dir: Path,
    workers: list[Worker],
) -> None:
    """The claim reads each job's payload for the worker (arq's `run_job` read it itself):
    an id whose payload expired, or is not a job, is dropped as arq drops it, and the
    jobs around it run."""
    keys = Keys()
    client = redis.asyncio.Redis.from_url(fault_redis.url)
    try:
        before = await submit(http, parameters={"text": "before"})
        await client.zadd(keys.queue, {"expired-job": 1, "garbled-job": 2})
        await client.set(job_key_prefix + "garbled-job", b"not a job")
        after = await submit(http, parameters={"text": "after"})
        workers.append(await started(Worker(env, log_dir)))
        for accepted in (before, after):
            events = await follow(http, accepted["events_url"])
            assert events[-1].event == "job.completed"
        left = {"expired-job", "garbled-job", before["job_id"], after["job_id"]}
        await until(lambda: queued_of(client, keys, left), 20, "the jobs to leave the queue")
        for job in left:  # arq's keys of every job that ended, as arq's own end leaves them
            arq_keys = (prefix + job for prefix in ARQ_PREFIXES)
            assert await client.exists(*arq_keys) == 0
    finally:
        await client.aclose()


ARQ_PREFIXES = (job_key_prefix, in_progress_key_prefix, retry_key_prefix)


async def queued_of(client: redis.asyncio.Redis, keys: Keys, ids: set[str]) -> bool:
    queued = {job.decode() for job in await client.zrange(keys.queue, 0, -1)}
    return not queued & ids


async def test_after_the_last_attempt_a_lost_job_fails_with_worker_lost(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    one_try = {**env, "SPOOL_MAX_TRIES": "1"}
    accepted, events = await kill_mid_stream(http, one_try, log_dir, workers)
    assert [e.event for e in events[-2:]] == ["job.retrying", "job.failed"]
    failed = events[-1].json
    assert failed["error"]["code"] == "worker_lost"
    job = (await http.get(f"/v1/jobs/{accepted['job_id']}")).json()
    assert (job["status"], job["error"]["code"]) == ("failed", "worker_lost")


async def test_a_worker_runs_as_many_jobs_at_once_as_its_concurrency(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    """All of `--concurrency` slots fill, even while earlier jobs still sit in arq's queue."""
    workers.append(await started(Worker(env, log_dir, "--concurrency", "8")))
    first = [await submit(http, parameters={**SLOW, "text": "a " * 60}) for _ in range(4)]
    await asyncio.gather(*(wait_started(http, a) for a in first))
    rest = [await submit(http, parameters={**SLOW, "text": "a " * 60}) for _ in range(4)]
    runs = await asyncio.gather(*(follow(http, a["events_url"]) for a in first + rest))
    began = [next(e.json["ts"] for e in run if e.event == "job.started") for run in runs]
    finished = [run[-1].json["ts"] for run in runs]
    assert max(began) < min(finished), "the last four started before any job ended"


async def wait_started(http: httpx.AsyncClient, accepted: dict[str, str]) -> None:
    async with http.stream("GET", accepted["events_url"]) as response:
        async for frame in frames(response):
            if frame.event == "job.started":
                return
