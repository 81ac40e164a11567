"""The SSE endpoint's rules (contract §3)."""

import asyncio

import httpx
import pytest

from tests.helpers import follow_job, read_stream, submit
from tests.sse import frames

pytestmark = pytest.mark.inprocess


@pytest.fixture
def http(inprocess_http: httpx.AsyncClient) -> httpx.AsyncClient:
    """The API and a worker in this test's event loop (tests/inprocess.py)."""
    return inprocess_http


FAST = {"tokens_per_second": 2000, "ttft_ms": 0}


async def test_first_frame_is_retry_and_events_carry_the_common_fields(
    http: httpx.AsyncClient, session_id: str
) -> None:
    accepted = await submit(http, session_id=session_id, parameters=FAST, metadata={"k": "v"})
    async with http.stream("GET", accepted["events_url"]) as response:
        first = await anext(aiter(frames(response)))
    assert first.retry == 250
    events = await follow_job(http, accepted)
    kinds = [e.event for e in events]
    assert kinds[:3] == ["job.queued", "job.started", "step.started"]
    assert kinds[-2:] == ["step.finished", "job.completed"]
    queued = events[0].json
    assert queued["session_id"] == session_id
    assert queued["model"] == "simulated"
    assert queued["metadata"] == {"k": "v"}
    for e in events:
        assert {"type", "job_id", "seq", "ts"} <= e.json.keys()
    assert events[1].json["attempt"] == 1


async def test_reconnect_at_or_after_the_terminal_event_is_204(
    http: httpx.AsyncClient, session_id: str
) -> None:
    accepted = await submit(http, session_id=session_id, parameters=FAST)
    events = await follow_job(http, accepted)
    terminal = events[-1].id
    assert terminal is not None
    ms, seq = terminal.split("-")
    for cursor in (terminal, f"{ms}-{int(seq) + 1}", f"{int(ms) + 1}-0"):
        status, _ = await read_stream(
            http, accepted["events_url"], headers={"Last-Event-ID": cursor}
        )
        assert status == 204, cursor
    # One event before the terminal one: exactly the terminal event comes back.
    status, tail = await read_stream(
        http, accepted["events_url"], headers={"Last-Event-ID": events[-2].id or ""}
    )
    assert status == 200
    assert [e.id for e in tail] == [terminal]


async def test_malformed_cursor_is_400(http: httpx.AsyncClient, session_id: str) -> None:
    accepted = await submit(http, session_id=session_id, parameters=FAST)
    url = f"/v1/sessions/{session_id}/events"
    for headers, params in [
        ({"Last-Event-ID": "abc"}, {}),
        ({"Last-Event-ID": "12"}, {}),
        ({}, {"last_event_id": "1-2-3"}),
        ({}, {"last_event_id": "-5-1", "job_id": accepted["job_id"]}),
    ]:
        response = await http.get(url, headers=headers, params=params)
        assert response.status_code == 400, (headers, params)
        assert response.json()["error"]["code"] == "malformed_cursor"


async def test_unknown_session_and_unknown_job_are_404(
    http: httpx.AsyncClient, session_id: str
) -> None:
    response = await http.get("/v1/sessions/no-such-session/events")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "session_not_found"
    await submit(http, session_id=session_id, parameters=FAST)
    response = await http.get(f"/v1/sessions/{session_id}/events", params={"job_id": "job-nope"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


async def test_two_sessions_stream_at_once(http: httpx.AsyncClient) -> None:
    texts = {"s-one": "alpha beta gamma delta " * 20, "s-two": "一 二 三 四 五 " * 20}
    params = {"tokens_per_second": 200, "ttft_ms": 10}
    accepted = {
        sid: await submit(http, session_id=sid, parameters={**params, "text": text})
        for sid, text in texts.items()
    }
    results = await asyncio.gather(*(follow_job(http, a) for a in accepted.values()))
    for (sid, text), events in zip(texts.items(), results, strict=True):
        assert {e.json["job_id"] for e in events} == {accepted[sid]["job_id"]}
        assert "".join(e.json["delta"] for e in events if e.event == "text.delta") == text
        assert events[-1].event == "job.completed"
        # the two generations overlapped in time: neither waited for the other
    first_done = min(r[-1].json["ts"] for r in results)
    last_start = max(r[1].json["ts"] for r in results)
    assert last_start < first_done


async def test_session_stream_without_job_id_stays_open_with_pings_and_sees_later_jobs(
    http: httpx.AsyncClient, session_id: str
) -> None:
    first = await submit(http, session_id=session_id, parameters=FAST)
    await follow_job(http, first)
    seen: list[str] = []
    pings = 0
    second: dict[str, str] = {}
    async with http.stream("GET", f"/v1/sessions/{session_id}/events") as response:
        async for frame in frames(response):
            if frame.comments:
                pings += frame.comments.count("ping")
                if not second:  # idle: the session is quiet, submit the next job
                    second = await submit(http, session_id=session_id, parameters=FAST)
            if frame.event:
                seen.append(frame.json["job_id"])
                if frame.event == "job.completed" and frame.json["job_id"] == second.get("job_id"):
                    break
    assert pings >= 1
    assert seen[0] == first["job_id"]
    assert seen[-1] == second["job_id"]


async def test_post_stream_answers_with_the_jobs_events(
    http: httpx.AsyncClient, session_id: str
) -> None:
    body = {"input": "hi", "session_id": session_id, "parameters": {**FAST, "text": "one two"}}
    events = []
    async with http.stream("POST", "/v1/stream", json=body) as response:
        assert response.status_code == 200
        async for frame in frames(response):
            if frame.event:
                events.append(frame)
    assert events[0].event == "job.queued"
    assert events[-1].event == "job.completed"
    assert events[-1].json["output_text"] == "one two"
    # the same job is durable: it can be re-read from the session
    status, again = await read_stream(
        http, f"/v1/sessions/{session_id}/events", params={"job_id": events[0].json["job_id"]}
    )
    assert status == 200
    assert [e.data for e in again] == [e.data for e in events]


async def test_coalescing_merges_text_deltas_without_changing_the_text(
    http: httpx.AsyncClient, session_id: str
) -> None:
    text = " ".join(f"t{i}" for i in range(200))
    params = {"text": text, "tokens_per_second": 2000, "ttft_ms": 0, "coalesce_ms": 30}
    accepted = await submit(http, session_id=session_id, parameters=params)
    events = await follow_job(http, accepted)
    deltas = [e.json["delta"] for e in events if e.event == "text.delta"]
    assert "".join(deltas) == text == events[-1].json["output_text"]
    assert len(deltas) < 200 / 5, "deltas of ~60 tokens, not one per token"
    assert [e.json["seq"] for e in events] == list(range(len(events)))
    kinds = [e.event for e in events]
    assert kinds.index("step.finished") > max(i for i, k in enumerate(kinds) if k == "text.delta")


async def test_coalesce_window_is_validated(http: httpx.AsyncClient) -> None:
    for bad in (-1, 5000, "soon", True):
        response = await http.post(
            "/v1/jobs", json={"input": "x", "parameters": {"coalesce_ms": bad}}
        )
        assert response.status_code == 422, bad
    for bad in ("soon", True, None):
        response = await http.post(
            "/v1/jobs", json={"input": "x", "parameters": {"behind_ms": bad}}
        )
        assert response.status_code == 422, bad
