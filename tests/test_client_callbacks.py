"""SDK callbacks and `raise_on_failure` against the real stack (simulated model)."""

import pytest

from spool_client import (
    ClientError,
    JobFailedError,
    JobResult,
    SpoolClient,
    StreamEvent,
    SyncSpoolClient,
)
from tests.procs import Api

pytestmark = pytest.mark.process

FAST = {"ttft_ms": 5, "tokens_per_second": 500}


async def test_callbacks_see_every_delta_and_the_final_result(stack: Api) -> None:
    texts: list[str] = []
    thoughts: list[str] = []
    events: list[StreamEvent] = []
    completed: list[JobResult] = []

    async def on_thinking(delta: str) -> None:  # a coroutine callback is awaited
        thoughts.append(delta)

    params = {**FAST, "text": "one two three", "thinking": "let me think"}
    async with SpoolClient(stack.url) as client:
        result = await client.run(
            "hi",
            parameters=params,
            on_text=texts.append,
            on_thinking=on_thinking,
            on_event=events.append,
            on_complete=completed.append,
            raise_on_failure=True,
        )
    assert "".join(texts) == result.text == "one two three"
    assert "".join(thoughts) == result.thinking == "let me think"
    assert len(texts) == result.chunks == 3
    assert completed == [result]
    assert events[0].type == "job.queued"
    assert events[-1].type == "job.completed"
    assert result.events == len(events)


async def test_raise_on_failure_carries_the_partial_result(stack: Api) -> None:
    params = {**FAST, "text": "a b c d e f", "fail_after_tokens": 3}
    completed: list[JobResult] = []
    async with SpoolClient(stack.url) as client:
        with pytest.raises(JobFailedError) as caught:
            await client.run(
                "hi", parameters=params, on_complete=completed.append, raise_on_failure=True
            )
        quiet = await client.run("hi", parameters=params)  # without the flag: a status
    error = caught.value
    assert error.code == "provider_error"
    assert "simulated failure after 3 tokens" in error.message
    partial = error.result
    assert (partial.status, partial.text) == ("failed", "a b c ")
    assert partial.usage.output_tokens == 3
    assert completed == [partial]
    assert (quiet.status, quiet.text) == ("failed", "a b c ")


def test_sync_client_passes_callbacks_and_raises(stack: Api) -> None:
    texts: list[str] = []
    with SyncSpoolClient(stack.url) as client:
        result = client.run("hi", parameters={**FAST, "text": "x y"}, on_text=texts.append)
        assert texts == ["x ", "y"]
        assert result.text == "x y"
        with pytest.raises(JobFailedError):
            client.run("hi", parameters={**FAST, "fail_after_tokens": 0}, raise_on_failure=True)
        with pytest.raises(ClientError) as caught:
            client.approve(result.job_id or "", "call_0")
        assert caught.value.status in (404, 409)
