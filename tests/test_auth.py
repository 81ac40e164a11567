"""Tenants (contract §4): keys required when set; another tenant's session is a 404, and
the same session id under two tenants names two unrelated sessions."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import follow_job, read_stream, submit
from tests.procs import Api, service_env

pytestmark = pytest.mark.process

FAST = {"tokens_per_second": 2000, "ttft_ms": 0}


@pytest.fixture(scope="module")
def keyed_api(redis_url: str, log_dir: Path, stack: Api) -> Iterator[Api]:
    """A second API with keys, on the same Redis as the shared stack's worker."""
    api = Api(service_env(redis_url, api_keys="acme:k-acme,globex:k-globex"), log_dir).start()
    yield api
    api.stop()


@pytest.fixture
async def clients(keyed_api: Api) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    made = {
        "none": httpx.AsyncClient(base_url=keyed_api.url),
        "acme": httpx.AsyncClient(
            base_url=keyed_api.url, headers={"Authorization": "Bearer k-acme"}
        ),
        "globex": httpx.AsyncClient(base_url=keyed_api.url, headers={"X-API-Key": "k-globex"}),
        "wrong": httpx.AsyncClient(base_url=keyed_api.url, headers={"X-API-Key": "k-nope"}),
    }
    yield made
    for client in made.values():
        await client.aclose()


async def test_keys_are_required_and_checked(clients: dict[str, httpx.AsyncClient]) -> None:
    for who, code in (("none", "missing_api_key"), ("wrong", "invalid_api_key")):
        response = await clients[who].post("/v1/jobs", json={"input": "hi"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == code
        response = await clients[who].get("/v1/sessions/any/events")
        assert response.status_code == 401
    assert (await clients["none"].get("/healthz")).status_code == 200


async def test_another_tenants_session_is_404_and_never_its_events(
    clients: dict[str, httpx.AsyncClient], session_id: str
) -> None:
    acme, globex = clients["acme"], clients["globex"]
    accepted = await submit(acme, session_id=session_id, parameters=FAST)
    await follow_job(acme, accepted)
    for path in (
        f"/v1/sessions/{session_id}",
        f"/v1/sessions/{session_id}/events",
        accepted["events_url"],
        f"/v1/jobs/{accepted['job_id']}",
    ):
        response = await globex.get(path)
        assert response.status_code == 404, path
        assert "data:" not in response.text
    assert (await globex.delete(f"/v1/sessions/{session_id}")).status_code == 404
    # The same id under the other tenant is another, unrelated session: writing there
    # neither reaches the owner's session nor reads from it.
    theirs = await submit(globex, session_id=session_id, parameters=FAST | {"text": "globex"})
    their_events = await follow_job(globex, theirs)
    assert {e.json["job_id"] for e in their_events} == {theirs["job_id"]}
    history = (await globex.get(f"/v1/sessions/{session_id}")).json()
    assert [j["job_id"] for j in history["jobs"]] == [theirs["job_id"]]
    # The owner still sees everything, and only its own.
    status, events = await read_stream(acme, accepted["events_url"])
    assert status == 200
    assert events[-1].event == "job.completed"
    mine = (await acme.get(f"/v1/sessions/{session_id}")).json()
    assert [j["job_id"] for j in mine["jobs"]] == [accepted["job_id"]]
