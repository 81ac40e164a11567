"""Browser stream tokens (contract §4): minted per session, accepted on its events URL only."""

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from spool.api import tokens
from spool.shared.settings import Settings, parse_api_keys
from tests.conftest import STACK_SETTINGS
from tests.helpers import TERMINAL, read_stream
from tests.procs import Api, service_env

pytestmark = pytest.mark.process

KEYS = "acme:key-acme,globex:key-globex"
SECRET = "test-secret"
ACME = {"Authorization": "Bearer key-acme"}
GLOBEX = {"X-API-Key": "key-globex"}


@pytest.fixture(scope="module")
def keyed_api(redis_url: str, log_dir: Path, stack: Api) -> Iterator[Api]:
    """An API with keys set, sharing the stack's Redis and worker."""
    env = service_env(redis_url, api_keys=KEYS, secret=SECRET, **STACK_SETTINGS)
    api = Api(env, log_dir).start()
    yield api
    api.stop()


@pytest.fixture
async def anon(keyed_api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=keyed_api.url, timeout=30.0) as client:
        yield client


async def queued(client: httpx.AsyncClient, session_id: str) -> dict[str, str]:
    body = {"input": "hi", "session_id": session_id, "parameters": {"text": "one two"}}
    response = await client.post("/v1/jobs", json=body, headers=ACME)
    assert response.status_code == 202, response.text
    accepted: dict[str, str] = response.json()
    return accepted


async def test_a_token_opens_its_sessions_events_without_a_key(
    anon: httpx.AsyncClient, session_id: str
) -> None:
    accepted = await queued(anon, session_id)
    response = await anon.post(f"/v1/sessions/{session_id}/token", headers=ACME)
    assert response.status_code == 200, response.text
    minted = response.json()
    assert minted["expires_in"] == 300
    assert minted["events_url"].startswith(f"/v1/sessions/{session_id}/events?token=")
    params = {"token": minted["token"], "job_id": accepted["job_id"]}
    status, events = await read_stream(anon, f"/v1/sessions/{session_id}/events", params=params)
    assert status == 200
    assert events[-1].event in TERMINAL
    assert "".join(e.json["delta"] for e in events if e.event == "text.delta") == "one two"


async def test_a_token_is_refused_elsewhere(anon: httpx.AsyncClient, session_id: str) -> None:
    await queued(anon, session_id)
    await queued(anon, f"{session_id}-other")
    token = (await anon.post(f"/v1/sessions/{session_id}/token", headers=ACME)).json()["token"]
    refused = [
        await anon.get(f"/v1/sessions/{session_id}-other/events", params={"token": token}),
        await anon.get(f"/v1/sessions/{session_id}", params={"token": token}),
        await anon.get(f"/v1/sessions/{session_id}/events", params={"token": token[:-2] + "xx"}),
        await anon.get(f"/v1/sessions/{session_id}/events", params={"token": "ü.ü"}),
        await anon.get(f"/v1/sessions/{session_id}/events"),
    ]
    assert [r.status_code for r in refused] == [401] * 5
    codes = [r.json()["error"]["code"] for r in refused]
    assert codes == [
        "invalid_token",
        "missing_api_key",
        "invalid_token",
        "invalid_token",
        "missing_api_key",
    ]


async def test_expired_and_foreign_tokens(anon: httpx.AsyncClient, session_id: str) -> None:
    await queued(anon, session_id)
    settings = Settings(api_keys=parse_api_keys(KEYS), secret=SECRET)
    url = f"/v1/sessions/{session_id}/events"
    expired = tokens.mint(settings, "acme", session_id, now=time.time() - 301)
    response = await anon.get(url, params={"token": expired})
    assert response.status_code == 401
    forged = tokens.mint(
        Settings(api_keys=parse_api_keys(KEYS), secret="other"), "acme", session_id
    )
    assert (await anon.get(url, params={"token": forged})).status_code == 401
    # another tenant can neither mint a token for the session nor read it with its own
    assert (await anon.post(f"/v1/sessions/{session_id}/token", headers=GLOBEX)).status_code == 404
    globex_token = tokens.mint(settings, "globex", session_id)
    assert (await anon.get(url, params={"token": globex_token})).status_code == 404


def test_verify_refuses_malformed_tokens() -> None:
    settings = Settings(secret=SECRET)
    good = tokens.mint(settings, "t", "s")
    assert tokens.verify(settings, good, "s") == "t"
    for bad in ["", ".", "abc", "a.b.c", good + "x", "é." + good.partition(".")[2]]:
        assert tokens.verify(settings, bad, "s") is None
