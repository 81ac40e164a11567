"""The slice's central promise: cut the SSE connection anywhere, resume, lose and repeat nothing."""

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spool.worker.providers.simulated import tokenize
from tests.fakes.stack import other_db
from tests.helpers import TERMINAL, follow_job, read_stream, submit
from tests.procs import Api, Worker, service_env
from tests.sse import Frame

pytestmark = pytest.mark.inprocess


@pytest.fixture
def http(inprocess_http: httpx.AsyncClient) -> httpx.AsyncClient:
    """The API and a worker in this test's event loop (tests/inprocess.py)."""
    return inprocess_http


PARAGRAPHS = [
    "Durable streams keep every token of an answer, even when the browser drops. 🚀",
    "流式传输让用户立刻看到答案。 断线之后 可以 从上次的 位置 继续。",
    "Emoji survive too: 👩‍💻 🧵 ✨ and so do tabs\tand trailing spaces   ",
    "日本語の テキスト も 同じ ように 流れます。 한국어 문장도 마찬가지입니다.",
]


def long_text(words: int = 300) -> str:
    rng = random.Random(7)
    lines, count = [], 0
    while count < words:
        line = rng.choice(PARAGRAPHS)
        lines.append(line)
        count += len(line.split())
    return "\n".join(lines) + "\n"


TEXT = long_text()


def wire(events: list[Frame]) -> list[tuple[str | None, str | None, str | None]]:
    return [(e.id, e.event, e.data) for e in events]


def resume_args(via: str, cursor: str | None) -> dict[str, dict[str, str]]:
    if cursor is None:
        return {}
    if via == "header":
        return {"headers": {"Last-Event-ID": cursor}}
    return {"params": {"last_event_id": cursor}}


@pytest.mark.parametrize("via", ["header", "query"])
async def test_random_cuts_and_resume_equal_an_uninterrupted_read(
    http: httpx.AsyncClient, session_id: str, via: str
) -> None:
    assert 280 <= len(TEXT.split()) <= 330
    rng = random.Random(f"cuts-{via}")
    accepted = await submit(
        http,
        session_id=session_id,
        input="write a long answer",
        parameters={"text": TEXT, "tokens_per_second": 300, "ttft_ms": 30},
    )
    url = accepted["events_url"]
    job_id = accepted["job_id"]
    # job_id= in the URL: the query parameter form of the cursor must be merged with it
    collected: list[Frame] = []
    cursor: str | None = None
    cuts = 0
    while not collected or collected[-1].event not in TERMINAL:
        args = resume_args(via, cursor)
        if "params" in args:
            args["params"]["job_id"] = job_id
            status, events = await read_stream(
                http, url.split("?")[0], max_events=rng.randint(3, 40), **args
            )
        else:
            status, events = await read_stream(http, url, max_events=rng.randint(3, 40), **args)
        assert status == 200
        assert events, "a resumed read must make progress"
        collected += events
        cursor = events[-1].id
        cuts += 1
    assert cuts >= 6, "the connection must have been cut at least 5 times"

    # Once past the terminal event, reconnecting is 204 (a browser stops retrying).
    status, _ = await read_stream(http, url, headers={"Last-Event-ID": cursor or ""})
    assert status == 204

    full = await follow_job(http, accepted)
    assert wire(collected) == wire(full)
    ids = [tuple(map(int, (e.id or "").split("-"))) for e in full]
    assert ids == sorted(set(ids)), "ids strictly increase, no duplicate"
    assert [e.json["seq"] for e in full] == list(range(len(full))), "no gap in seq"
    assert {e.json["job_id"] for e in full} == {job_id}
    for e in full:
        assert e.json["type"] == e.event

    streamed = "".join(e.json["delta"] for e in full if e.event == "text.delta")
    completed = full[-1].json
    assert full[-1].event == "job.completed"
    record = (await http.get(f"/v1/jobs/{job_id}")).json()
    assert streamed == completed["output_text"] == record["output_text"] == TEXT
    assert completed["usage"]["output_tokens"] == len(TEXT.split())


@pytest.fixture(scope="module")
def eager_coalescing(redis_url: str, log_dir: Path) -> Iterator[Api]:
    """An API and a worker (on their own database) whose worker merges every delta that
    waits for an append round (`SPOOL_BEHIND_MS=0`): a stream whose tokens come faster
    than rounds is then coalesced for sure, however fast the machine."""
    env = service_env(other_db(redis_url, 2), sse_ping_s="0.5", behind_ms="0")
    worker = Worker(env, log_dir).start()
    try:
        api = Api(env, log_dir).start()
        yield api
        api.stop()
    finally:
        worker.stop()


async def test_a_coalesced_stream_resumes_exactly_from_any_id(
    eager_coalescing: Api, session_id: str
) -> None:
    """Tokens far faster than append rounds: the worker merges the deltas that wait for a
    round (adaptive coalescing). The stream must still resume exactly from every id."""
    async with httpx.AsyncClient(base_url=eager_coalescing.url, timeout=30.0) as http:
        await _resume_coalesced(http, session_id)


async def _resume_coalesced(http: httpx.AsyncClient, session_id: str) -> None:
    accepted = await submit(
        http,
        session_id=session_id,
        parameters={"text": TEXT, "tokens_per_second": 1_000_000, "ttft_ms": 0},
    )
    full = await follow_job(http, accepted)
    output = full[-1].json["output_text"]
    assert output == TEXT
    deltas = [e.json["delta"] for e in full if e.event == "text.delta"]
    assert len(deltas) < len(tokenize(TEXT)), "deltas were merged"
    assert "".join(deltas) == output
    assert [e.json["seq"] for e in full] == list(range(len(full))), "seq stays dense"

    delta_at = [i for i, e in enumerate(full) if e.event == "text.delta"]
    cuts = {0, 1, delta_at[0], delta_at[len(delta_at) // 2], delta_at[-1], len(full) - 2}
    cuts |= set(random.Random(13).sample(range(len(full) - 1), min(4, len(full) - 1)))
    for cut in sorted(cuts):
        headers = {"Last-Event-ID": full[cut].id or ""}
        status, rest = await read_stream(http, accepted["events_url"], headers=headers)
        assert status == 200
        assert wire(rest) == wire(full[cut + 1 :]), f"resumed after event {cut}"
        before = [e.json["delta"] for e in full[: cut + 1] if e.event == "text.delta"]
        after = [e.json["delta"] for e in rest if e.event == "text.delta"]
        assert "".join(before + after) == output
