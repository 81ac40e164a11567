"""Hardening (contract §4), mostly of open mode (no keys, the `make run` default): JSON
bodies only, loopback Host names only, bad input is a 4xx, no infrastructure detail in
unauthenticated answers, and stream tokens kept out of access logs."""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spool.cli.embedded import free_port
from tests.helpers import follow_job, read_stream, submit
from tests.procs import Api, Proc, service_env, wait_for

pytestmark = pytest.mark.process

QUICK = {"text": "a b c", "tokens_per_second": 500, "ttft_ms": 0}


async def test_post_bodies_must_be_json(http: httpx.AsyncClient) -> None:
    body = json.dumps({"input": "hi"})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": content_type} if content_type else {}
        response = await http.post("/v1/jobs", content=body, headers=headers)
        assert response.status_code == 415, content_type
        assert response.json()["error"]["code"] == "unsupported_media_type"
    ok = await http.post(
        "/v1/jobs", content=body, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 202


async def test_open_mode_answers_loopback_host_names_only(http: httpx.AsyncClient) -> None:
    for host in ("evil.example", "evil.example:8000", "10.0.0.5", "127.0.0.1.evil.example"):
        response = await http.get("/healthz", headers={"host": host})
        assert response.status_code == 403, host
        assert response.json()["error"]["code"] == "host_not_allowed"
        refused = await http.post("/v1/jobs", json={"input": "hi"}, headers={"host": host})
        assert refused.status_code == 403
    for host in ("localhost", "localhost:8000", "127.0.0.1:9", "[::1]:8000", "app.localhost"):
        assert (await http.get("/healthz", headers={"host": host})).status_code == 200, host


async def test_deep_nesting_is_a_400(http: httpx.AsyncClient) -> None:
    for depth in (100, 100_000):
        nested = "[" * depth + "]" * depth
        body = f'{{"input": "hi", "parameters": {{"a": {nested}}}}}'
        response = await http.post(
            "/v1/jobs", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, depth
        assert response.json()["error"]["code"] == "too_deeply_nested"


async def test_stream_ids_out_of_range_are_a_400(http: httpx.AsyncClient, session_id: str) -> None:
    accepted = await submit(http, session_id=session_id, parameters=QUICK)
    await follow_job(http, accepted)
    url = f"/v1/sessions/{session_id}/events"
    for cursor in ("18446744073709551616-0", "0-18446744073709551616", "1-2-3", "\uff11-2"):
        response = await http.get(url, params={"last_event_id": cursor})
        assert response.status_code == 400, cursor
        assert response.json()["error"]["code"] == "malformed_cursor"
    # the largest id is a valid cursor: after the job's end, so a 204
    response = await http.get(
        f"{url}?job_id={accepted['job_id']}", headers={"Last-Event-ID": "18446744073709551615-0"}
    )
    assert response.status_code == 204


async def test_ids_with_a_trailing_newline_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/jobs", json={"input": "hi", "session_id": "abc\n"})
    assert response.status_code == 422
    assert (await http.get("/v1/sessions/abc%0A")).status_code == 422
    response = await http.post("/v1/jobs", json={"input": "hi", "model": "simulated\n"})
    assert response.status_code == 422


@pytest.fixture
def redisless_api(log_dir: Path) -> Iterator[str]:
    """An API whose Redis does not answer."""
    port, dead = free_port(), free_port()
    env = service_env(f"redis://127.0.0.1:{dead}/0")
    proc = Proc(["-m", "spool.api", "--port", str(port)], env, log_dir / f"api-{port}.log")
    proc.start()
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 30, "the API to start")
        yield url
    finally:
        proc.stop()


async def test_unauthenticated_answers_carry_no_infrastructure_detail(
    redisless_api: str,
) -> None:
    async with httpx.AsyncClient(base_url=redisless_api, timeout=15) as http:
        for response in (
            await http.get("/readyz"),
            await http.post("/v1/jobs", json={"input": "x"}),
        ):
            assert response.status_code == 503
            assert "127.0.0.1" not in response.text
            assert "6379" not in response.text
            assert ":" + redisless_api.rsplit(":", 1)[1] not in response.text
            assert "redis://" not in response.text


async def test_stream_tokens_never_reach_the_access_log(
    redis_url: str, log_dir: Path, stack: Api, session_id: str
) -> None:
    api = Api(service_env(redis_url, api_keys="acme:k-acme", sse_ping_s="0.5"), log_dir).start()
    try:
        async with httpx.AsyncClient(
            base_url=api.url, headers={"X-API-Key": "k-acme"}, timeout=15
        ) as http:
            await follow_job(http, await submit(http, session_id=session_id, parameters=QUICK))
            token = (await http.post(f"/v1/sessions/{session_id}/token")).json()["token"]
        async with httpx.AsyncClient(base_url=api.url, timeout=15) as browser:
            status, events = await read_stream(
                browser, f"/v1/sessions/{session_id}/events", params={"token": token}, max_events=1
            )
            assert status == 200
            assert events
            # a text/plain POST is refused with keys too
            response = await browser.post(
                "/v1/jobs",
                content="{}",
                headers={"content-type": "text/plain", "X-API-Key": "k-acme"},
            )
            assert response.status_code == 415
        wait_for(lambda: "token=[redacted]" in api.output(), 10, "the access log line")
        assert token not in api.output()
        assert token.split(".")[0] not in api.output()
    finally:
        api.stop()
