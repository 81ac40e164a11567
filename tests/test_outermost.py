"""The routes served before FastAPI (`api/outermost.py`) answer as the FastAPI routes do:
the same statuses, headers and bodies, for errors, streams and accepted jobs.

Two servers on one Redis, the same settings: the app as served (those routes before
FastAPI) and the app with that layer off (`create_app(..., outermost=False)`, the FastAPI
routes). What differs between two submissions by nature (the new job's and session's
ids, times in a stream's events) is masked before the answers are compared.
"""

import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from spool.api.app import create_app
from spool.api.outermost import Outermost
from spool.cli.embedded import free_port
from spool.shared.settings import Settings
from tests.conftest import STACK_SETTINGS
from tests.helpers import follow_job, submit
from tests.inprocess import InProcessStack, database_url, serving

pytestmark = pytest.mark.inprocess

KEY = {"Authorization": "Bearer k-acme"}
IGNORED = {"date", "server"}
QUEUE_DB = 5  # the servers without a worker: their jobs stay queued


@pytest.fixture(scope="module")
async def keyed(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, str]]:
    """(the app as served, the FastAPI route alone): with API keys, a worker behind them."""
    env = {f"SPOOL_{k.upper()}": v for k, v in STACK_SETTINGS.items()}
    settings = Settings.from_env(
        {**env, "SPOOL_REDIS_URL": database_url(redis_url), "SPOOL_API_KEYS": "acme:k-acme"}
    )
    run_dir: Path = tmp_path_factory.mktemp("events-path")
    fastapi_app = create_app(settings, outermost=False)
    async with InProcessStack(settings, run_dir) as stack, serving(fastapi_app) as fastapi_only:
        yield stack.url, fastapi_only


async def answer(url: str, path: str, headers: dict[str, str]) -> tuple[object, ...]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.get(path, headers=headers)
    kept = sorted((k, v) for k, v in response.headers.items() if k not in IGNORED)
    return response.status_code, kept, response.content


def test_the_served_app_answers_its_routes_before_fastapi(redis_url: str) -> None:
    """Starlette builds its middleware stack with the method `_outermost` wraps: if that
    changes, the routes silently go back through FastAPI; this fails instead."""
    settings = Settings.from_env({"SPOOL_REDIS_URL": database_url(redis_url)})
    stack = create_app(settings).build_middleware_stack()
    assert isinstance(stack, Outermost)
    assert (stack.events, stack.jobs) == (True, True)
    for role, served in (("jobs", (False, True)), ("events", (True, False))):
        alone = create_app(settings, role).build_middleware_stack()
        assert isinstance(alone, Outermost)
        assert (alone.events, alone.jobs) == served


async def test_errors_and_streams_are_the_fastapi_routes(keyed: tuple[str, str]) -> None:
    lean, fastapi_only = keyed
    async with httpx.AsyncClient(base_url=lean, headers=KEY, timeout=30) as http:
        job = await submit(http, session_id="same")
        events = await follow_job(http, job)
        token = (await http.post("/v1/sessions/same/token")).json()["token"]
    base, job_id, last = "/v1/sessions/same/events", job["job_id"], events[-1].id or ""
    cases: list[tuple[str, dict[str, str]]] = [
        (base + f"?job_id={job_id}", KEY),  # 200: the job's events, then the end
        (base + f"?job_id={job_id}&format=text", KEY),
        (base + f"?job_id={job_id}&format=openai", KEY),
        (base + f"?job_id={job_id}&token={token}", {}),  # a stream token instead of a key
        (base + f"?job_id={job_id}", {**KEY, "Last-Event-ID": last}),  # 204: nothing more
        (base + f"?job_id={job_id}&last_event_id={events[1].id}", KEY),  # resumed
        (base, {}),  # 401 missing_api_key
        (base, {"X-API-Key": "wrong"}),  # 401 invalid_api_key
        (base + "?token=forged", {}),  # 401 invalid_token
        ("/v1/sessions/other/events", KEY),  # 404 session_not_found
        ("/v1/sessions/a%20b/events", KEY),  # 422 invalid_field
        (base, {**KEY, "Last-Event-ID": "nope"}),  # 400 malformed_cursor
        (base + "?last_event_id=1-x", KEY),  # 400 malformed_cursor
        (base + "?format=nope", KEY),  # 422 unknown_format
        (base + "?job_id=job-nope", KEY),  # 404 job_not_found
    ]
    statuses = set()
    for path, headers in cases:
        served = await answer(lean, path, headers)
        assert served == await answer(fastapi_only, path, headers), path
        statuses.add(served[0])
    assert statuses == {200, 204, 400, 401, 404, 422}


async def test_the_host_check_is_the_guards(redis_url: str) -> None:
    settings = Settings.from_env({"SPOOL_REDIS_URL": database_url(redis_url)})
    lean_app = create_app(settings, check_host=True)
    fastapi_app = create_app(settings, check_host=True, outermost=False)
    async with serving(lean_app) as lean, serving(fastapi_app) as fastapi_only:
        for host in ("evil.example", "localhost"):
            path = "/v1/sessions/nobody/events"
            served = await answer(lean, path, {"Host": host})
            assert served == await answer(fastapi_only, path, {"Host": host})
            assert served[0] == (403 if host == "evil.example" else 404)


# -- POST /v1/jobs and POST /v1/stream ----------------------------------------------------

MASKS = [
    (re.compile(rb"job-[0-9a-f]{20}"), b"job-*"),
    (re.compile(rb"ses-[0-9a-f]{20}"), b"ses-*"),
    (re.compile(rb"\d{13}-\d+"), b"*-*"),  # stream ids
    (re.compile(rb"127\.0\.0\.1:\d+"), b"host"),  # a redirect's location
    (re.compile(rb'"(ts|created|ttft_ms|duration_ms)":\d+'), b""),
]
JSON = {"Content-Type": "application/json"}
# behind_ms < 0: never merge late deltas, so two runs of a job stream the same chunks
FAST = {"text": "one two three", "tokens_per_second": 2000, "ttft_ms": 0, "behind_ms": -1}
Body = bytes | Callable[[], AsyncIterator[bytes]]  # a function: the body sent chunked


def masked(data: bytes) -> bytes:
    for pattern, replacement in MASKS:
        data = pattern.sub(replacement, data)
    return data


async def post(
    url: str, path: str, body: Body = b"", headers: dict[str, str] | None = None
) -> tuple[object, ...]:
    """The answer to a `POST`, read to its end, with what differs by nature masked."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        content = body if isinstance(body, bytes) else body()
        response = await http.post(path, content=content, headers=headers or {})
    kept = sorted(
        (k, masked(v.encode()).decode()) for k, v in response.headers.items() if k not in IGNORED
    )
    return response.status_code, kept, masked(response.content)


def job(**extra: object) -> bytes:
    return json.dumps({"input": "hi", "model": "simulated", "parameters": FAST, **extra}).encode()


def chunked(*pieces: bytes) -> Callable[[], AsyncIterator[bytes]]:
    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    return body


async def test_submissions_are_the_fastapi_routes(keyed: tuple[str, str]) -> None:
    lean, fastapi_only = keyed
    keyed_json = {**KEY, **JSON}
    cases: list[tuple[str, Body, dict[str, str]]] = [
        ("/v1/jobs", job(), keyed_json),  # 202
        ("/v1/jobs", job(session_id="named"), keyed_json),  # 202, a named session
        ("/v1/jobs", job(), {**KEY, "Content-Type": "application/json; charset=utf-8"}),
        ("/v1/jobs", chunked(job()[:5], job()[5:]), keyed_json),  # no Content-Length
        ("/v1/jobs", job(), JSON),  # 401 missing_api_key
        ("/v1/jobs", job(), {"X-API-Key": "wrong", **JSON}),  # 401 invalid_api_key
        ("/v1/jobs", job(), {**KEY, "Content-Type": "text/plain"}),  # 415
        ("/v1/jobs", job(), {"Content-Type": "text/plain"}),  # 415 before 401
        ("/v1/jobs", job(), KEY),  # 415: a body without a content type
        ("/v1/jobs", b"", KEY),  # no body: 400 malformed_json
        ("/v1/jobs", b"{nope", keyed_json),  # 400 malformed_json
        ("/v1/jobs", b"[" * 40 + b"]" * 40, keyed_json),  # 400 too_deeply_nested
        ("/v1/jobs", job(max_steps=0), keyed_json),  # 422 invalid_field
        ("/v1/jobs", job(typo=1), keyed_json),  # 422 invalid_field
        ("/v1/jobs", job(model="nope"), keyed_json),  # 422: an unknown model
        ("/v1/jobs", job(tools=["nope"]), keyed_json),  # 422: an unknown tool
        ("/v1/jobs", b" " * (1 << 20) + job(), keyed_json),  # 413, by Content-Length
        ("/v1/jobs", chunked(*[b" " * (1 << 19)] * 3), keyed_json),  # 413, while reading
        ("/v1/jobs", job(), {**keyed_json, "Idempotency-Key": "k" * 256}),  # 422 (FastAPI's)
        ("/v1/jobs", job(), {**JSON, "Idempotency-Key": "k" * 256}),  # 401 before that
        ("/v1/jobs?format=text", job(), keyed_json),  # a query is ignored: 202
        ("/v1/stream", job(), keyed_json),  # 200: the job's stream
        ("/v1/stream?format=text", job(), keyed_json),
        ("/v1/stream?format=openai", job(), keyed_json),
        ("/v1/stream?format=nope", job(), keyed_json),  # 422 unknown_format
        ("/v1/stream", job(), JSON),  # 401
        ("/v1/stream", b"{nope", keyed_json),  # 400
        ("/v1/stream", job(), {**KEY, "Content-Type": "text/plain"}),  # 415
        ("/v1/jobs/", job(), keyed_json),  # not these routes: FastAPI's answers
        ("/v1/jobs/job-nope/cancel", b"", KEY),
    ]
    statuses = set()
    for path, body, headers in cases:
        served = await post(lean, path, body, headers)
        assert served == await post(fastapi_only, path, body, headers), (path, headers)
        statuses.add(served[0])
    assert statuses == {200, 202, 307, 400, 401, 404, 413, 415, 422}


async def test_an_idempotent_replay_is_the_fastapi_routes(keyed: tuple[str, str]) -> None:
    lean, fastapi_only = keyed
    headers = {**KEY, **JSON}
    for path in ("/v1/jobs", "/v1/stream"):
        answers = []
        for url, key in ((lean, f"lean{path}"), (fastapi_only, f"fastapi{path}")):
            keyed_headers = {**headers, "Idempotency-Key": key}
            first = await post(url, path, job(), keyed_headers)
            assert await post(url, path, job(), keyed_headers) == first  # the same job
            reused = await post(url, path, job(input="other"), keyed_headers)  # 422
            answers.append((first, reused))
        assert answers[0] == answers[1]
        assert answers[0][1][0] == 422
    # one Redis: a key used through one path is replayed through the other, unmasked
    async with httpx.AsyncClient(headers={**headers, "Idempotency-Key": "both"}) as http:
        first = await http.post(f"{lean}/v1/jobs", content=job())
        again = await http.post(f"{fastapi_only}/v1/jobs", content=job())
    assert (first.status_code, first.json()) == (again.status_code, again.json())


@pytest.fixture(scope="module")
async def queued(redis_url: str) -> AsyncIterator[tuple[str, str]]:
    """(the app as served, the FastAPI routes alone) with no worker, so jobs stay queued and
    a tenant's active limit (2) is reached; and no event stream is allowed."""
    url = database_url(redis_url, QUEUE_DB)
    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    env = {"SPOOL_REDIS_URL": url, "SPOOL_API_KEYS": "lim:k-lim,other:k-other"}
    env |= {"SPOOL_TENANT_MAX_ACTIVE_JOBS": "2", "SPOOL_TENANT_MAX_STREAMS": "0"}
    settings = Settings.from_env(env)
    lean_app, fastapi_app = create_app(settings), create_app(settings, outermost=False)
    async with serving(lean_app) as lean, serving(fastapi_app) as fastapi_only:
        yield lean, fastapi_only


async def test_refusals_for_limits_and_busy_sessions_are_the_fastapi_routes(
    queued: tuple[str, str],
) -> None:
    lean, fastapi_only = queued
    headers = {"Authorization": "Bearer k-lim", **JSON}
    for url in queued:  # the session's first job waits for a worker, the second behind it
        assert (await post(url, "/v1/jobs", job(session_id="busy"), headers))[0] == 202
    statuses = []
    for path, body in (
        ("/v1/jobs", job(session_id="busy", on_busy="reject")),  # 409 session_busy
        ("/v1/jobs", job()),  # 429 too_many_active_jobs
        ("/v1/stream", job()),  # 429 too_many_active_jobs
    ):
        served = await post(lean, path, body, headers)
        assert served == await post(fastapi_only, path, body, headers)
        statuses.append(served[0])
    assert statuses == [409, 429, 429]


async def test_a_stream_over_the_tenants_limit_is_the_fastapi_routes(
    queued: tuple[str, str],
) -> None:
    """`SPOOL_TENANT_MAX_STREAMS` 0: the job is accepted, its stream refused (429)."""
    lean, fastapi_only = queued
    headers = {"Authorization": "Bearer k-other", **JSON}  # a tenant with no jobs yet
    served = await post(lean, "/v1/stream", job(), headers)
    assert served == await post(fastapi_only, "/v1/stream", job(), headers)
    assert served[0] == 429


async def test_redis_unreachable_is_the_fastapi_routes() -> None:
    settings = Settings.from_env({"SPOOL_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    lean_app, fastapi_app = create_app(settings), create_app(settings, outermost=False)
    async with serving(lean_app) as lean, serving(fastapi_app) as fastapi_only:
        for path in ("/v1/jobs", "/v1/stream"):
            served = await post(lean, path, job(), JSON)
            assert served == await post(fastapi_only, path, job(), JSON)
            assert served[0] == 503
