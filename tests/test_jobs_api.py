"""Job and session routes (contract §2): validation, records, sessions."""

import httpx
import pytest

from tests.helpers import follow_job, submit

pytestmark = pytest.mark.inprocess


@pytest.fixture
def http(inprocess_http: httpx.AsyncClient) -> httpx.AsyncClient:
    """The API and a worker in this test's event loop (tests/inprocess.py)."""
    return inprocess_http


FAST = {"tokens_per_second": 2000, "ttft_ms": 0}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"input": "hi", "max_steps": 0}, 422, "invalid_field"),
        ({"input": "hi", "max_steps": 65}, 422, "invalid_field"),
        ({"input": ""}, 422, "invalid_field"),
        ({"input": []}, 422, "invalid_field"),
        ({"input": [{"role": "robot", "content": "x"}]}, 422, "invalid_field"),
        ({"input": "hi", "session_id": "has space"}, 422, "invalid_field"),
        ({"input": "hi", "session_id": "x" * 129}, 422, "invalid_field"),
        ({"input": "hi", "max_step": 3}, 422, "invalid_field"),
        ({"input": "hi", "on_busy": "queue"}, 422, "invalid_field"),
        ({"input": "hi", "metadata": {"n": 1}}, 422, "invalid_field"),
        ({"input": "hi", "model": "nosuch:model"}, 422, "unknown_model"),
        ({"input": "hi", "parameters": {"tokens_per_second": 0}}, 422, "invalid_field"),
        ({"input": "hi", "parameters": {"chunk_tokens": "many"}}, 422, "invalid_field"),
        ({}, 422, "invalid_field"),
    ],
)
async def test_invalid_bodies_are_422_with_a_json_error(
    http: httpx.AsyncClient, body: dict[str, object], status: int, code: str
) -> None:
    response = await http.post("/v1/jobs", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


async def test_malformed_json_is_400_and_oversized_body_is_413(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/jobs", content=b'{"input": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    response = await http.post("/v1/jobs", json={"input": "x" * (1 << 20)})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_unknown_route_and_method_are_json_errors(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = await http.put("/v1/jobs")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_job_record_after_completion(http: httpx.AsyncClient, session_id: str) -> None:
    accepted = await submit(
        http,
        session_id=session_id,
        input=[{"role": "user", "content": "one two three"}],
        parameters={**FAST, "text": "four five"},
        metadata={"trace": "abc", "note": "ünïcode ✓ 名前"},  # the record travels as MessagePack
    )
    assert accepted["status"] == "queued"
    assert accepted["session_id"] == session_id
    assert accepted["events_url"] == (
        f"/v1/sessions/{session_id}/events?job_id={accepted['job_id']}"
    )
    await follow_job(http, accepted)
    job = (await http.get(f"/v1/jobs/{accepted['job_id']}")).json()
    assert job["status"] == "completed"
    assert job["attempt"] == 1
    assert job["model"] == "simulated"
    assert job["output_text"] == "four five"
    assert job["usage"] == {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    assert job["cost"]["total"] == 0.0
    assert job["error"] is None
    assert job["metadata"] == {"trace": "abc", "note": "ünïcode ✓ 名前"}
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]
    assert (await http.get("/v1/jobs/job-nope")).status_code == 404


async def test_provider_failure_is_a_typed_job_failed_with_partial_output(
    http: httpx.AsyncClient, session_id: str
) -> None:
    accepted = await submit(
        http,
        session_id=session_id,
        parameters={**FAST, "text": "a b c d e", "fail_after_tokens": 3},
    )
    events = await follow_job(http, accepted)
    failed = events[-1]
    assert failed.event == "job.failed"
    assert failed.json["error"]["code"] == "provider_error"
    assert failed.json["output_text"] == "a b c "
    job = (await http.get(f"/v1/jobs/{accepted['job_id']}")).json()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "provider_error"


async def test_session_lists_its_jobs_and_delete_removes_it(
    http: httpx.AsyncClient, session_id: str
) -> None:
    first = await submit(http, session_id=session_id, parameters=FAST)
    await follow_job(http, first)
    second = await submit(http, session_id=session_id, parameters=FAST)
    await follow_job(http, second)
    session = (await http.get(f"/v1/sessions/{session_id}")).json()
    assert session["session_id"] == session_id
    assert [j["job_id"] for j in session["jobs"]] == [first["job_id"], second["job_id"]]
    assert session["busy"] is False
    response = await http.delete(f"/v1/sessions/{session_id}")
    assert response.status_code == 204
    assert (await http.get(f"/v1/sessions/{session_id}")).status_code == 404
    assert (await http.get(f"/v1/sessions/{session_id}/events")).status_code == 404
    assert (await http.get(f"/v1/jobs/{first['job_id']}")).status_code == 404


async def test_health_and_readiness(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/readyz")).json() == {"status": "ready"}
    assert "Spool" in (await http.get("/")).text
    assert (await http.get("/openapi.json")).json()["paths"]["/v1/jobs"]["post"]
