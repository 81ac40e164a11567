"""Human approval of tool calls (contract §7) and chains surviving a worker's death, with
real processes: an API with two tenants, workers started and SIGKILLed by the tests.

A job waiting for approval holds no worker slot: it is parked in its record and continued
by whichever worker is alive when the decision (or the expiry) comes.
"""

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from spool.shared.keys import Keys, SessionRef
from tests.fakes.stack import of, other_db
from tests.helpers import TERMINAL, submit
from tests.procs import Api, Worker, service_env
from tests.sse import Frame, frames

pytestmark = pytest.mark.process

SETTINGS = {
    "api_keys": "acme:k-acme,globex:k-globex",
    "lease_s": "2",
    "heartbeat_s": "0.3",
    "sse_ping_s": "0.5",
    "sse_retry_ms": "100",
    "tools_refresh_s": "0.5",
}
FAST = {"tokens_per_second": 2000, "ttft_ms": 0}
CALL = {"name": "calculator", "arguments": {"expression": "6 * 7"}}
ASKS = {**FAST, "text": "Let me compute.", "tool_calls": [CALL]}


@pytest.fixture(scope="module")
def env(redis_url: str) -> dict[str, str]:
    # a database of its own: the session-wide stack's worker must not take these jobs
    return service_env(other_db(redis_url, 2), **SETTINGS)


@pytest.fixture(autouse=True)
def clean_db(env: dict[str, str]) -> None:
    client = redis.Redis.from_url(env["SPOOL_REDIS_URL"])
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def api(env: dict[str, str], log_dir: Path) -> Iterator[Api]:
    api = Api(env, log_dir).start()
    yield api
    api.stop()


@pytest.fixture
def workers(env: dict[str, str], log_dir: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def start_worker(env: dict[str, str], log_dir: Path, workers: list[Worker], *args: str) -> Worker:
    worker = Worker(env, log_dir, *args).start()
    workers.append(worker)
    return worker


def client(api: Api, key: str) -> httpx.AsyncClient:
    return api.client(read_s=60, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
async def http(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with client(api, "k-acme") as c:
        yield c


class Follower:
    """Follows one job to its terminal event in the background, resuming on drops."""

    def __init__(self, http: httpx.AsyncClient, accepted: dict[str, Any]) -> None:
        self.http = http
        self.url = accepted["events_url"]
        self.events: list[Frame] = []
        self._seen = asyncio.Condition()
        self.task = asyncio.create_task(self._follow())

    async def _follow(self) -> list[Frame]:
        while not self.events or self.events[-1].event not in TERMINAL:
            headers = {"Last-Event-ID": self.events[-1].id or ""} if self.events else {}
            try:
                async with self.http.stream("GET", self.url, headers=headers) as response:
                    assert response.status_code == 200
                    async for frame in frames(response):
                        if frame.event:
                            async with self._seen:
                                self.events.append(frame)
                                self._seen.notify_all()
            except httpx.TransportError:
                await asyncio.sleep(0.2)  # back-off between reconnects, not synchronisation
        return self.events

    async def wait_for(self, kind: str, count: int = 1, **match: Any) -> dict[str, Any]:
        """The `count`-th event of type `kind` whose data has `match`'s values."""

        def found() -> list[dict[str, Any]]:
            return [
                e.json
                for e in self.events
                if e.event == kind and all(e.json.get(k) == v for k, v in match.items())
            ]

        async with asyncio.timeout(60), self._seen:
            await self._seen.wait_for(lambda: len(found()) >= count or self.task.done())
        assert len(found()) >= count, [e.event for e in self.events]
        return found()[count - 1]

    async def end(self) -> list[Frame]:
        return await asyncio.wait_for(self.task, 60)


async def decide(http: httpx.AsyncClient, job_id: str, call_id: str, **body: Any) -> httpx.Response:
    return await http.post(f"/v1/jobs/{job_id}/approvals/{call_id}", json=body)


async def test_waiting_job_frees_its_slot_and_decisions_are_checked(
    api: Api, http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    start_worker(env, log_dir, workers, "--concurrency", "1")
    accepted = await submit(http, tools=["calculator"], require_approval=True, parameters=ASKS)
    job_id = accepted["job_id"]
    waiting = Follower(http, accepted)
    requested = await waiting.wait_for("tool.approval_requested")
    assert (requested["call_id"], requested["name"]) == ("call_0", "calculator")
    assert requested["arguments"] == {"expression": "6 * 7"}
    job = (await http.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "awaiting_approval"
    assert job["pending_approvals"] == [
        {
            "call_id": "call_0",
            "name": "calculator",
            "arguments": {"expression": "6 * 7"},
            "expires_at": requested["expires_at"],
        }
    ]
    # nothing of the waiting session expires (contract §3)
    k, session = Keys(), SessionRef("acme", accepted["session_id"])
    db = redis.Redis.from_url(env["SPOOL_REDIS_URL"])
    try:
        for key in (k.stream(session), k.marks(session), k.records(session), k.session(session)):
            assert db.ttl(key) == -1, key  # exists, without a TTL
        assert db.ttl(k.job_index(job_id)) == -1
    finally:
        db.close()
    # the only worker slot is free: another job runs to completion meanwhile
    other = await submit(http, parameters={**FAST, "text": "meanwhile"})
    other_events = await Follower(http, other).end()
    assert other_events[-1].json["output_text"] == "meanwhile"
    assert not waiting.task.done()

    assert (await decide(http, job_id, "call_9", approved=True)).status_code == 404
    async with client(api, "k-globex") as globex:
        stranger = await decide(globex, job_id, "call_0", approved=True)
        assert stranger.status_code == 404
        assert stranger.json()["error"]["code"] == "job_not_found"
    approved = await decide(http, job_id, "call_0", approved=True)
    assert approved.status_code == 200
    assert approved.json() == {"call_id": "call_0", "approved": True}
    twice = await decide(http, job_id, "call_0", approved=False)
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "already_decided"

    events = await waiting.end()
    resolved = of(events, "tool.approval_resolved")
    assert [(r["call_id"], r["approved"]) for r in resolved] == [("call_0", True)]
    (result,) = of(events, "tool.result")
    assert (result["output"], result["is_error"]) == ("42", False)
    done = events[-1].json
    assert done["type"] == "job.completed"
    assert done["output_text"] == "Let me compute.Let me compute."
    assert [e.json["seq"] for e in events] == list(range(len(events)))
    job = (await http.get(f"/v1/jobs/{job_id}")).json()
    assert (job["status"], job["pending_approvals"]) == ("completed", [])


async def test_decision_after_every_worker_restarted(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    first = start_worker(env, log_dir, workers)
    accepted = await submit(
        http, tools=["calculator"], require_approval=["calculator"], parameters=ASKS
    )
    waiting = Follower(http, accepted)
    await waiting.wait_for("tool.approval_requested")
    first.signal(signal.SIGKILL)  # kill first, then start the replacement
    first.popen.wait(10)  # type: ignore[union-attr]
    start_worker(env, log_dir, workers)
    edited = {"expression": "1 + 1"}
    response = await decide(http, accepted["job_id"], "call_0", approved=True, arguments=edited)
    assert response.status_code == 200
    events = await waiting.end()
    (resolved,) = of(events, "tool.approval_resolved")
    assert resolved["arguments"] == edited
    (result,) = of(events, "tool.result")
    assert result["output"] == "2"  # the call ran, with the edited arguments
    assert events[-1].event == "job.completed"
    assert "job.retrying" not in [e.event for e in events]  # nothing was running when killed


async def test_rejected_call_is_not_run_and_the_loop_goes_on(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    start_worker(env, log_dir, workers)
    accepted = await submit(http, tools=["calculator"], require_approval=True, parameters=ASKS)
    waiting = Follower(http, accepted)
    await waiting.wait_for("tool.approval_requested")
    bad = await decide(http, accepted["job_id"], "call_0", approved="maybe")
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_field")
    response = await decide(http, accepted["job_id"], "call_0", approved=False, reason="too risky")
    assert response.json() == {"call_id": "call_0", "approved": False}
    events = await waiting.end()
    (resolved,) = of(events, "tool.approval_resolved")
    assert (resolved["approved"], resolved["reason"]) == (False, "too risky")
    (result,) = of(events, "tool.result")
    assert result["is_error"] is True
    assert "rejected" in result["output"]
    assert "too risky" in result["output"]
    assert [s["step"] for s in of(events, "step.started")] == [0, 1]
    assert events[-1].event == "job.completed"


async def test_undecided_call_expires_without_any_client(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    start_worker(env, log_dir, workers)
    accepted = await submit(
        http,
        tools=["calculator"],
        require_approval=True,
        parameters={**ASKS, "approval_timeout_s": 1},
    )
    waiting = Follower(http, accepted)
    requested = await waiting.wait_for("tool.approval_requested")
    assert requested["expires_at"] - requested["ts"] in range(900, 1100)
    events = await waiting.end()
    (resolved,) = of(events, "tool.approval_resolved")
    assert (resolved["approved"], resolved["reason"]) == (False, "timeout")
    (result,) = of(events, "tool.result")
    assert result["is_error"] is True
    assert "expired" in result["output"]
    assert events[-1].event == "job.completed"
    late = await decide(http, accepted["job_id"], "call_0", approved=True)
    assert late.status_code == 409


async def test_time_parked_does_not_count_against_the_job_timeout(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    start_worker(env, log_dir, workers)
    accepted = await submit(
        http,
        tools=["calculator"],
        require_approval=True,
        timeout_s=1.5,
        parameters={**ASKS, "approval_timeout_s": 3},
    )
    events = await Follower(http, accepted).end()
    (resolved,) = of(events, "tool.approval_resolved")
    assert resolved["reason"] == "timeout"  # it waited 3 s, twice its timeout_s ...
    assert events[-1].event == "job.completed"  # ... and still completed: waiting is not running


async def test_cancel_while_waiting(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    start_worker(env, log_dir, workers)
    accepted = await submit(http, tools=["calculator"], require_approval=True, parameters=ASKS)
    waiting = Follower(http, accepted)
    await waiting.wait_for("tool.approval_requested")
    response = await http.post(f"/v1/jobs/{accepted['job_id']}/cancel")
    assert response.status_code == 202
    events = await waiting.end()
    cancelled = events[-1].json
    assert cancelled["type"] == "job.cancelled"
    assert cancelled["output_text"] == "Let me compute."
    assert cancelled["usage"]["output_tokens"] == 3
    assert "tool.result" not in [e.event for e in events]
    job = (await http.get(f"/v1/jobs/{accepted['job_id']}")).json()
    assert job["status"] == "cancelled"
    late = await decide(http, accepted["job_id"], "call_0", approved=True)
    assert late.status_code == 409
    # the session is free again: its next job runs
    follow_up = await submit(http, session_id=accepted["session_id"], parameters=FAST)
    assert (await Follower(http, follow_up).end())[-1].event == "job.completed"


async def test_chain_continues_at_the_unfinished_step_after_a_crash(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    doomed = start_worker(env, log_dir, workers)
    slow = " ".join(f"w{i}" for i in range(120)) + " end"
    chain = [
        {"template": "Say {word}.", "parameters": {**FAST, "text": "alpha beta"}},
        {"template": "Then {previous}", "parameters": {"text": slow, "tokens_per_second": 30}},
    ]
    accepted = await submit(http, input=None, chain=chain, variables={"word": "alpha"})
    follower = Follower(http, accepted)
    await follower.wait_for("text.delta", 5, chain_step=1)
    doomed.signal(signal.SIGKILL)  # kill first, then start the replacement
    start_worker(env, log_dir, workers)
    events = await follower.end()
    kinds = [e.event for e in events]
    assert kinds.count("job.retrying") == 1
    after = events[kinds.index("job.retrying") + 1 :]
    assert {e.json.get("chain_step") for e in after if "step" in e.json} == {1}  # step 0 not rerun
    step0 = [e.json for e in events if e.json.get("chain_step") == 0]
    assert [e["type"] for e in step0].count("step.finished") == 1
    done = events[-1].json
    assert done["type"] == "job.completed"
    text = "".join(e.json["delta"] for e in after if e.event == "text.delta")
    assert done["output_text"] == text == slow
    last = [e.json for e in after if e.event == "step.finished"]
    first = [e for e in step0 if e["type"] == "step.finished"]
    assert done["usage"]["output_tokens"] == sum(f["usage"]["output_tokens"] for f in first + last)


async def test_chain_step_waits_for_approval_then_the_chain_goes_on(
    http: httpx.AsyncClient, env: dict[str, str], log_dir: Path, workers: list[Worker]
) -> None:
    start_worker(env, log_dir, workers)
    chain = [
        {"template": "Compute {x}.", "tools": ["calculator"], "parameters": ASKS},
        {"template": "Check {previous}", "parameters": FAST},
    ]
    accepted = await submit(
        http, input=None, chain=chain, variables={"x": "6*7"}, require_approval=True
    )
    waiting = Follower(http, accepted)
    requested = await waiting.wait_for("tool.approval_requested")
    assert requested["chain_step"] == 0
    response = await decide(http, accepted["job_id"], "call_0", approved=True)
    assert response.status_code == 200
    events = await waiting.end()
    (resolved,) = of(events, "tool.approval_resolved")
    assert resolved["chain_step"] == 0
    (result,) = of(events, "tool.result")
    assert (result["output"], result["chain_step"]) == ("42", 0)
    done = events[-1].json
    assert done["type"] == "job.completed"
    assert done["output_text"].startswith("You said: Check Let me compute.Let me compute.")
    assert [f["chain_step"] for f in of(events, "step.finished")] == [0, 0, 1]
