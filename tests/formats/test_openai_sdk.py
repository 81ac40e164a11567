"""`POST /v1/chat/completions` through the official `openai` SDK, and a cut stream resumed
on the events route with `format=openai`, read by the SDK's own stream decoder."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk

from tests.procs import Api

pytestmark = pytest.mark.process

WORDS = " ".join(f"w{i}" for i in range(40))
FAST = {"text": WORDS, "ttft_ms": 0, "tokens_per_second": 2000}
SLOW = {"text": WORDS, "ttft_ms": 0, "tokens_per_second": 60}
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Count."},
]


@pytest.fixture
async def client(stack: Api) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=f"{stack.url}/v1", api_key="unused", max_retries=0) as c:
        yield c


async def job_record(http: httpx.AsyncClient, job_id: str) -> dict[str, object]:
    response = await http.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200
    record: dict[str, object] = response.json()
    return record


async def test_streamed_completion_with_usage(
    client: AsyncOpenAI, http: httpx.AsyncClient, session_id: str
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="simulated",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"parameters": FAST, "session_id": session_id},
    )
    job_id = raw.headers["x-spool-job-id"]
    assert raw.headers["x-spool-session-id"] == session_id
    text, usage = "", None
    async for chunk in raw.parse():
        assert chunk.id == f"chatcmpl-{job_id}"
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    record = await job_record(http, job_id)
    assert text == record["output_text"] == WORDS
    assert usage is not None
    assert usage.completion_tokens == 40
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_non_streamed_completion(client: AsyncOpenAI, http: httpx.AsyncClient) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="simulated",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=100,
        temperature=0.5,
        extra_body={"parameters": FAST},
    )
    completion = raw.parse()
    job_id = raw.headers["x-spool-job-id"]
    record = await job_record(http, job_id)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == record["output_text"] == WORDS
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 40


async def test_an_unknown_model_is_a_clear_422(client: AsyncOpenAI) -> None:
    import openai

    with pytest.raises(openai.UnprocessableEntityError) as info:
        await client.chat.completions.create(model="nope", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.status_code == 422


async def test_a_cut_stream_resumes_on_the_events_route(
    client: AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    head, last_id = "", None
    async with client.chat.completions.with_streaming_response.create(
        model="simulated",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"parameters": SLOW},
    ) as response:
        job_id = response.headers["x-spool-job-id"]
        session_id = response.headers["x-spool-session-id"]
        async for line in response.iter_lines():
            if line.startswith("id: "):
                last_id = line[4:]
            elif line.startswith("data: ") and line != "data: [DONE]":
                chunk = ChatCompletionChunk.model_validate(json.loads(line[6:]))
                head += chunk.choices[0].delta.content or "" if chunk.choices else ""
            if len(head) > 10 and line == "":
                break  # the client drops the connection mid-answer
    assert last_id is not None
    resumed: AsyncStream[ChatCompletionChunk] = await client.get(
        f"/sessions/{session_id}/events",
        cast_to=ChatCompletionChunk,
        options={
            "params": {"job_id": job_id, "format": "openai"},
            "headers": {"Last-Event-ID": last_id},
        },
        stream=True,
        stream_cls=AsyncStream[ChatCompletionChunk],
    )
    tail, usage = "", None
    async for chunk in resumed:
        if chunk.choices:
            assert chunk.choices[0].delta.role is None, "the resume repeated the first chunk"
            tail += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    record = await job_record(http, job_id)
    assert tail, "the job had ended before the cut: nothing was resumed"
    assert head + tail == record["output_text"] == WORDS
    assert usage is not None


async def test_a_failed_job_is_an_error_the_sdk_does_not_retry(
    client: AsyncOpenAI, http: httpx.AsyncClient, session_id: str
) -> None:
    import openai

    failing = {**FAST, "fail_after_tokens": 3}
    with pytest.raises(openai.APIStatusError) as info:
        await client.with_options(max_retries=2).chat.completions.create(
            model="simulated",
            messages=MESSAGES,  # type: ignore[arg-type]
            extra_body={"parameters": failing, "session_id": session_id},
        )
    assert info.value.status_code == 502
    assert info.value.response.headers["x-should-retry"] == "false"
    session = (await http.get(f"/v1/sessions/{session_id}")).json()
    assert [j["status"] for j in session["jobs"]] == ["failed"], "retried: a second job ran"
