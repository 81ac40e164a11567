"""The events route served before FastAPI (`api/events_path.py`) answers as the FastAPI
route does: the same statuses, headers and bodies, for errors and for streams.

Two servers on one Redis, the same settings: the app as served (events before FastAPI)
and the app with that layer off (`create_app(..., events_path=False)`, the FastAPI route).
"""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from spool.api.app import create_app
from spool.api.events_path import Outermost
from spool.shared.settings import Settings
from tests.conftest import STACK_SETTINGS
from tests.helpers import follow_job, submit
from tests.inprocess import InProcessStack, database_url, serving

pytestmark = pytest.mark.inprocess

KEY = {"Authorization": "Bearer k-acme"}
IGNORED = {"date", "server"}


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
    fastapi_app = create_app(settings, events_path=False)
    async with InProcessStack(settings, run_dir) as stack, serving(fastapi_app) as fastapi_only:
        yield stack.url, fastapi_only


async def answer(url: str, path: str, headers: dict[str, str]) -> tuple[object, ...]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.get(path, headers=headers)
    kept = sorted((k, v) for k, v in response.headers.items() if k not in IGNORED)
    return response.status_code, kept, response.content


def test_the_served_app_answers_the_events_route_before_fastapi(redis_url: str) -> None:
    """Starlette builds its middleware stack with the method `_outermost` wraps: if that
    changes, the events route silently goes back through FastAPI; this fails instead."""
    settings = Settings.from_env({"SPOOL_REDIS_URL": database_url(redis_url)})
    stack = create_app(settings).build_middleware_stack()
    assert isinstance(stack, Outermost)
    assert stack.events


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
    fastapi_app = create_app(settings, check_host=True, events_path=False)
    async with serving(lean_app) as lean, serving(fastapi_app) as fastapi_only:
        for host in ("evil.example", "localhost"):
            path = "/v1/sessions/nobody/events"
            served = await answer(lean, path, {"Host": host})
            assert served == await answer(fastapi_only, path, {"Host": host})
            assert served[0] == (403 if host == "evil.example" else 404)
