"""Every format over the real stack: `?format=` on the events route and `POST /v1/stream`,
and exact resume from a `Last-Event-ID` taken mid-stream."""

import json
from typing import Any

import httpx
import pytest

from spool.api.formats import FORMATS
from tests.formats.sse_client import keys, read_frames
from tests.helpers import follow_job, submit

pytestmark = pytest.mark.process

WORDS = " ".join(f"w{i}" for i in range(40))
SLOW = {"text": WORDS, "ttft_ms": 0, "tokens_per_second": 80}
FAST = {"text": WORDS, "ttft_ms": 0, "tokens_per_second": 2000}


@pytest.mark.parametrize("name", sorted(FORMATS))
async def test_a_stream_cut_mid_answer_resumes_exactly(
    http: httpx.AsyncClient, session_id: str, name: str
) -> None:
    body = {"input": "hi", "session_id": session_id, "parameters": SLOW}
    response, head = await read_frames(
        http, "POST", "/v1/stream", params={"format": name}, json=body, stop_after_ids=4
    )
    assert response.status_code == 200
    job_id = response.headers["x-spool-job-id"]
    assert response.headers["x-spool-session-id"] == session_id
    last_id = [f.id for f in head if f.id is not None][-1]
    url = f"/v1/sessions/{session_id}/events"
    params = {"format": name, "job_id": job_id}
    _, tail = await read_frames(http, "GET", url, params=params, headers={"Last-Event-ID": last_id})
    _, whole = await read_frames(http, "GET", url, params=params)
    assert keys(head + tail) == keys(whole)
    assert whole[0].id is not None
    assert whole[-1].id is not None
    assert len(tail) > 3, "the cut fell after the answer: nothing was resumed"
    # and the same from every id of the finished stream
    for cut in [f.id for f in whole if f.id is not None][::7]:
        _, rest = await read_frames(http, "GET", url, params=params, headers={"Last-Event-ID": cut})
        assert keys(rest) == keys(_after(whole, cut))


def _after(frames: list, cut: str) -> list:
    index = [f.id for f in frames].index(cut)
    return frames[index + 1 :]


def _job(accepted: dict[str, str], fmt: str) -> dict[str, str]:
    return {"job_id": accepted["job_id"], "format": fmt}


async def test_token_and_text_frames_concatenate_to_the_output(
    http: httpx.AsyncClient, session_id: str
) -> None:
    accepted = await submit(http, session_id=session_id, parameters=FAST, input="hi")
    events = await follow_job(http, accepted)
    output = events[-1].json["output_text"]
    url = f"/v1/sessions/{session_id}/events"
    _, token = await read_frames(http, "GET", url, params=_job(accepted, "token"))
    assert [f.event for f in token] == ["token"] * (len(token) - 1) + ["done"]
    assert "".join(f.data or "" for f in token[:-1]) == output
    _, text = await read_frames(http, "GET", url, params=_job(accepted, "text"))
    assert [f.event for f in text] == [None] * len(text)
    assert text[-1].data == "[DONE]"
    assert "".join(f.data or "" for f in text[:-1]) == output
    _, openai = await read_frames(http, "GET", url, params=_job(accepted, "openai"))
    chunks = [json.loads(f.data or "") for f in openai[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == output
    assert chunks[-1]["usage"]["completion_tokens"] == events[-1].json["usage"]["output_tokens"]


async def test_ai_sdk_headers_and_a_session_wide_follow(
    http: httpx.AsyncClient, session_id: str
) -> None:
    first = await submit(http, session_id=session_id, parameters=FAST)
    await follow_job(http, first)
    second = await submit(http, session_id=session_id, parameters=FAST)
    await follow_job(http, second)
    url = f"/v1/sessions/{session_id}/events"
    async with http.stream("GET", url, params={"format": "ai-sdk"}) as response:
        assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
        starts: list[str] = []
        async for line in response.aiter_lines():
            if line.startswith('data: {"type":"start"'):
                starts.append(json.loads(line[6:])["messageId"])
            if len(starts) == 2:
                break
    assert starts == [first["job_id"], second["job_id"]]


@pytest.mark.parametrize("route", ["events", "stream"])
async def test_an_unknown_format_is_refused_before_anything_runs(
    http: httpx.AsyncClient, session_id: str, route: str
) -> None:
    if route == "events":
        await submit(http, session_id=session_id, parameters=FAST)
        response = await http.get(f"/v1/sessions/{session_id}/events?format=xml")
    else:
        body = {"input": "hi", "session_id": session_id}
        response = await http.post("/v1/stream?format=xml", json=body)
        assert (await http.get(f"/v1/sessions/{session_id}")).status_code == 404
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_format"


async def test_ui_chat_refuses_a_conversation_without_user_text(
    http: httpx.AsyncClient, session_id: str
) -> None:
    body = {"id": session_id, "messages": [{"id": "m1", "role": "assistant", "parts": []}]}
    response = await http.post("/v1/ui/chat", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_user_message"
    bad_id = {**body, "id": "no spaces", "messages": [{"role": "user", "parts": []}]}
    assert (await http.post("/v1/ui/chat", json=bad_id)).status_code == 422


async def test_ui_chat_reconnect_is_204_without_an_unfinished_job(
    http: httpx.AsyncClient, session_id: str
) -> None:
    assert (await http.get(f"/v1/ui/chat/{session_id}/stream")).status_code == 204
    message = {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
    body = {"id": session_id, "messages": [message], "trigger": "submit-message"}
    response, frames = await read_frames(
        http, "POST", "/v1/ui/chat", json={**body, "model": "simulated", "parameters": FAST}
    )
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert frames[-1].data == "[DONE]"
    assert (await http.get(f"/v1/ui/chat/{session_id}/stream")).status_code == 204


async def test_the_openapi_document_lists_the_format_routes(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    for path in ("/v1/ui/chat", "/v1/chat/completions", "/stream", "/api/v1/generate/stream"):
        assert "text/event-stream" in paths[path]["post"]["responses"]["200"]["content"], path
    reconnect = paths["/v1/ui/chat/{chat_id}/stream"]["get"]["responses"]
    assert set(reconnect) >= {"200", "204"}
    events = paths["/v1/sessions/{session_id}/events"]["get"]["parameters"]
    assert "format" in [p["name"] for p in events]


async def test_ui_chat_regenerate_runs_the_clients_conversation(
    http: httpx.AsyncClient, session_id: str
) -> None:
    """Submit answers the last user message with the session's memory; regenerate runs the
    turns the client sends, without that memory (the simulated model counts input words)."""

    def text(role: str, value: str) -> dict[str, object]:
        return {"id": value, "role": role, "parts": [{"type": "text", "text": value}]}

    async def chat(trigger: str, *messages: dict[str, object]) -> dict[str, Any]:
        body = {"id": session_id, "messages": list(messages), "trigger": trigger}
        response, frames = await read_frames(
            http, "POST", "/v1/ui/chat", json={**body, "parameters": FAST}
        )
        assert response.status_code == 200, response.text
        assert json.loads(frames[-2].data or "") == {"type": "finish", "finishReason": "stop"}
        job: dict[str, Any] = (
            await http.get(f"/v1/jobs/{response.headers['x-spool-job-id']}")
        ).json()
        return job

    first = await chat("submit-message", text("user", "zero"))
    assert first["usage"]["input_tokens"] == 1
    second = await chat("submit-message", text("user", "zero"), text("user", "one"))
    assert second["usage"]["input_tokens"] == 1 + 40 + 1  # the memory, then "one"
    turns = (text("user", "zero"), text("assistant", "cero"), text("user", "one"))
    again = await chat("regenerate-message", *turns)
    assert again["usage"]["input_tokens"] == 3  # only what the client sent
