"""The Python client against the real stack: forced drops, exact reconstruction, errors."""

import asyncio
import random
import signal
from pathlib import Path

import httpx
import pytest

from spool_client import (
    CancelView,
    ClientError,
    JobResult,
    JobView,
    SpoolClient,
    StreamEvent,
    StreamInterrupted,
    StreamTimeout,
    SyncSpoolClient,
)
from tests.conftest import STACK_SETTINGS
from tests.helpers import submit
from tests.procs import Api, service_env, started, stopped
from tests.proxy import CuttingProxy
from tests.test_resume import long_text

pytestmark = pytest.mark.process

TEXT = long_text(200)
FAST = {"text": TEXT, "tokens_per_second": 400, "ttft_ms": 20}


def wire(events: list[StreamEvent]) -> list[tuple[str | None, str, str]]:
    return [(e.id, e.type, e.raw) for e in events]


def deltas(events: list[StreamEvent]) -> str:
    return "".join(e.data["delta"] for e in events if e.type == "text.delta")


def comparable(result: JobResult) -> dict[str, object]:
    """A result without this client's own clock readings."""
    fields = {f: getattr(result, f) for f in result.__struct_fields__}
    fields.pop("first_token_ms")
    return fields


async def reference(url: str, session_id: str, job_id: str) -> tuple[JobResult, list[StreamEvent]]:
    events: list[StreamEvent] = []
    async with SpoolClient(url) as client:
        result = await client.collect(session_id, job_id, on_event=events.append)
    return result, events


async def test_collect_through_connection_cuts_equals_an_uninterrupted_read(
    http: httpx.AsyncClient, stack: Api, session_id: str
) -> None:
    accepted = await submit(http, session_id=session_id, input="long", parameters=FAST)
    rng = random.Random(11)
    cuts = sorted(rng.sample(range(40, 30_000), 12))
    # each connection is cut after its own byte count: small ones land in the headers
    cuts = [c - p for p, c in zip([0, *cuts], cuts, strict=False)]
    got: list[StreamEvent] = []
    async with (
        CuttingProxy(stack.port, cuts) as proxy,
        SpoolClient(proxy.url, backoff_base=0.01, max_retries=3) as client,
    ):
        result = await client.collect(session_id, accepted["job_id"], on_event=got.append)
    want, want_events = await reference(stack.url, session_id, accepted["job_id"])
    assert proxy.cut == len(cuts), "every planned cut happened while the job streamed"
    assert wire(got) == wire(want_events)
    assert len({e.id for e in got}) == len(got)
    assert deltas(got) == TEXT
    assert result.status == "completed"
    assert result.text == TEXT
    assert comparable(result) == comparable(want)
    assert result.chunks == len(TEXT.split())
    assert result.usage.output_tokens == len(TEXT.split())
    assert result.first_token_ms is not None


async def test_collect_survives_the_api_being_killed_and_restarted(
    redis_url: str, log_dir: Path, stack: Api, session_id: str
) -> None:
    api = await started(Api(service_env(redis_url, **STACK_SETTINGS), log_dir))
    slow = {"text": TEXT, "tokens_per_second": 150, "ttft_ms": 20}
    got: list[StreamEvent] = []
    restarted: list[Api] = []
    mid_answer = asyncio.Event()

    def on_event(event: StreamEvent) -> None:
        got.append(event)
        if event.type == "text.delta" and len(got) == 40:
            mid_answer.set()

    def kill_and_restart() -> None:
        api.signal(signal.SIGKILL)
        assert api.popen is not None
        api.popen.wait(10)
        restarted.append(Api(api.env, log_dir, port=api.port).start())

    async def restart_mid_answer() -> None:
        await mid_answer.wait()
        await asyncio.to_thread(kill_and_restart)

    try:
        async with SpoolClient(api.url, backoff_base=0.05) as client:
            accepted = await client.submit("long", session_id=session_id, parameters=slow)
            result, _ = await asyncio.gather(
                client.collect(session_id, accepted.job_id, on_event=on_event),
                restart_mid_answer(),
            )
    finally:
        for proc in [api, *restarted]:
            await stopped(proc)
    assert restarted, "the API was restarted mid-stream"
    _, want_events = await reference(stack.url, session_id, accepted.job_id)
    assert wire(got) == wire(want_events)
    assert deltas(got) == TEXT == result.text


async def test_interrupted_stream_carries_the_partial_result_and_can_be_resumed(
    http: httpx.AsyncClient, stack: Api, session_id: str
) -> None:
    accepted = await submit(http, session_id=session_id, input="long", parameters=FAST)
    got: list[StreamEvent] = []
    async with (
        CuttingProxy(stack.port, [3000], then=0) as proxy,
        SpoolClient(proxy.url, backoff_base=0.01, max_retries=2) as client,
    ):
        with pytest.raises(StreamInterrupted) as caught:
            await client.collect(session_id, accepted["job_id"], on_event=got.append)
    assert proxy.connections == 3  # the first, then max_retries reconnects cut at once
    partial = caught.value.partial
    assert partial is not None
    assert partial.status == "running"
    assert partial.events == len(got) > 0
    assert partial.last_event_id == caught.value.last_event_id == got[-1].id
    assert TEXT.startswith(partial.text)
    async with SpoolClient(stack.url) as client:
        rest: list[StreamEvent] = []
        await client.collect(
            session_id,
            accepted["job_id"],
            last_event_id=partial.last_event_id,
            on_event=rest.append,
        )
    assert deltas(got) + deltas(rest) == TEXT
    _, want_events = await reference(stack.url, session_id, accepted["job_id"])
    assert wire(got + rest) == wire(want_events)


async def test_first_event_and_idle_timeouts(
    http: httpx.AsyncClient, stack: Api, session_id: str
) -> None:
    async with SpoolClient(stack.url, first_event_timeout=0.5) as client:
        done = await client.run("hi", session_id=session_id, parameters={"text": "a b c"})
        assert done.text == "a b c"
        with pytest.raises(StreamTimeout) as caught:  # pings keep coming, events do not
            async for _ in client.events(session_id, last_event_id=done.last_event_id):
                pass
        assert caught.value.last_event_id == done.last_event_id
    slow = {"text": "late", "ttft_ms": 5_000}
    async with SpoolClient(stack.url, idle_timeout=0.5) as client:
        accepted = await client.submit("hi", session_id=session_id, parameters=slow)
        with pytest.raises(StreamTimeout) as caught:
            await client.collect(session_id, accepted.job_id)
    partial = caught.value.partial
    assert partial is not None
    assert partial.events >= 1
    assert partial.text == ""


async def test_errors_are_typed(http: httpx.AsyncClient, session_id: str, stack: Api) -> None:
    async with SpoolClient(stack.url) as client:
        with pytest.raises(ClientError) as caught:
            await client.collect("no-such-session", "job-x")
        assert (caught.value.status, caught.value.code) == (404, "session_not_found")
        with pytest.raises(ClientError) as caught:
            await client.submit("hi", model="nope:x")
        assert (caught.value.status, caught.value.code) == (422, "unknown_model")


def test_sync_client_runs_and_follows(stack: Api, session_id: str) -> None:
    with SyncSpoolClient(stack.url) as client:
        result = client.run("hi", session_id=session_id, parameters={"text": "one two three"})
        assert (result.status, result.text, result.chunks) == ("completed", "one two three", 3)
        assert result.usage.output_tokens == 3
        events = list(client.events(session_id, result.job_id))
        assert events[0].type == "job.queued"
        assert events[-1].type == "job.completed"
        assert events[-1].id == result.last_event_id


async def test_cancel_from_the_client_ends_the_collected_result_as_cancelled(stack: Api) -> None:
    async with SpoolClient(stack.url) as client:
        params = {"text": "word " * 300, "tokens_per_second": 40, "ttft_ms": 0}
        accepted = await client.submit("x", parameters=params)
        streaming = asyncio.Event()

        def on_event(event: StreamEvent) -> None:
            if event.type == "text.delta":
                streaming.set()

        async def cancel_when_streaming() -> CancelView:
            await streaming.wait()
            return await client.cancel(accepted.job_id)

        reply, result = await asyncio.gather(
            cancel_when_streaming(),
            client.collect(accepted.session_id, accepted.job_id, on_event=on_event),
        )
    assert reply == CancelView(job_id=accepted.job_id, status="cancelling")
    assert result.status == "cancelled"
    assert 0 < len(result.text.split()) < 300
    assert result.usage.output_tokens == len(result.text.split())


async def test_get_job_and_session_are_typed_views(stack: Api) -> None:
    async with SpoolClient(stack.url) as client:
        params = {"text": "one two three", "ttft_ms": 0}
        result = await client.run("x", parameters=params, metadata={"who": "test"})
        assert result.job_id is not None
        job = await client.get_job(result.job_id)
        session = await client.get_session(result.session_id)
        again = await client.cancel(result.job_id)
        await client.delete_session(result.session_id)
        with pytest.raises(ClientError) as gone:
            await client.get_session(result.session_id)
    assert isinstance(job, JobView)
    assert (job.status, job.done, job.output_text) == ("completed", True, "one two three")
    assert job.usage is not None
    assert job.usage.output_tokens == 3
    assert job.created_at is not None
    assert job.finished_at is not None
    assert job.created_at <= job.finished_at
    assert job.metadata == {"who": "test"}
    assert [j.job_id for j in session.jobs] == [job.job_id]
    assert session.jobs[0] == job
    assert not session.busy
    assert again == CancelView(job_id=job.job_id, status="completed")  # finished: a no-op
    assert (gone.value.status, gone.value.code) == (404, "session_not_found")
