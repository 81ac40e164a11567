"""Two tenants, one session id, at the timings that used to leak (contract §3, §4).

The stack runs under its own key prefix (which also keeps the shared stack's worker off
its queue) with a one-second retention, so "longer than the retention" is quick.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis

from spool.shared.keys import Keys, SessionRef
from tests.helpers import follow_job, read_stream, submit, until
from tests.procs import Api, Worker, service_env
from tests.sse import Frame

pytestmark = pytest.mark.process

KEYS = Keys("tenancy")
SECRET = "acmesecret"
# ~3 s of output at 20 tokens/s: longer than the 1 s retention
SLOW_SECRET = {"text": f"{SECRET} " * 60, "tokens_per_second": 20, "ttft_ms": 0}
QUICK_SECRET = {"text": f"{SECRET} again", "tokens_per_second": 500, "ttft_ms": 0}
GLOBEX = {"text": "globex own words", "tokens_per_second": 500, "ttft_ms": 0}


@pytest.fixture(scope="module")
def tenancy_stack(redis_url: str, log_dir: Path) -> Iterator[Api]:
    env = service_env(
        redis_url,
        key_prefix=KEYS.prefix,
        api_keys="acme:k-acme,globex:k-globex",
        retention_s="1",
        sse_ping_s="0.5",
    )
    worker = Worker(env, log_dir).start()
    api = Api(env, log_dir).start()
    yield api
    api.stop()
    worker.stop()


@pytest.fixture
async def tenants(tenancy_stack: Api) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    timeout = httpx.Timeout(10.0, read=30.0)
    made = {
        name: httpx.AsyncClient(
            base_url=tenancy_stack.url, headers={"X-API-Key": f"k-{name}"}, timeout=timeout
        )
        for name in ("acme", "globex")
    }
    yield made
    for client in made.values():
        await client.aclose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def text_of(events: list[Frame]) -> str:
    return "".join(e.json["delta"] for e in events if e.event == "text.delta")


async def session_keys(client: aredis.Redis, s: SessionRef) -> list[bytes]:
    return sorted([k async for k in client.scan_iter(match=f"{KEYS.tag(s)}:*".replace("{", "\\{"))])


async def assert_globex_sees_none_of_acme(
    globex: httpx.AsyncClient, client: aredis.Redis, session_id: str
) -> dict[str, Any]:
    """globex uses the same session id: its own session, with nothing of acme's in it."""
    theirs = await submit(globex, session_id=session_id, input="hello there", parameters=GLOBEX)
    events = await follow_job(globex, theirs)
    assert SECRET not in "".join(e.data or "" for e in events)
    done = events[-1].json
    assert done["output_text"] == GLOBEX["text"]
    assert done["usage"]["input_tokens"] == 2  # "hello there": no history of acme's
    status, everything = await read_stream(
        globex, f"/v1/sessions/{session_id}/events", max_events=len(events)
    )
    assert status == 200
    assert SECRET not in "".join(e.data or "" for e in everything)
    session = (await globex.get(f"/v1/sessions/{session_id}")).json()
    assert [j["job_id"] for j in session["jobs"]] == [theirs["job_id"]]
    for key in await session_keys(client, SessionRef("globex", session_id)):
        assert SECRET.encode() not in repr(await dump(client, key)).encode(), key
    return theirs


async def dump(client: aredis.Redis, key: bytes) -> object:
    kind = (await client.type(key)).decode()
    if kind == "stream":
        return await client.xrange(key)
    if kind == "hash":
        return await client.hgetall(key)
    if kind == "list":
        return await client.lrange(key, 0, -1)
    return await client.get(key)


async def deltas_seen(http: httpx.AsyncClient, accepted: dict[str, Any], count: int) -> None:
    status, events = await read_stream(http, accepted["events_url"], max_events=count + 3)
    assert status == 200
    assert sum(e.event == "text.delta" for e in events) >= count


async def test_a_session_outlives_its_retention_while_its_jobs_wait_or_run(
    tenants: dict[str, httpx.AsyncClient], redis_client: aredis.Redis, session_id: str
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    running = await submit(acme, session_id=session_id, parameters=SLOW_SECRET)
    waiting = await submit(acme, session_id=session_id, parameters=QUICK_SECRET)
    await deltas_seen(acme, running, 40)  # ≥ 2 s of running: twice the retention
    mine = SessionRef("acme", session_id)
    keys = await session_keys(redis_client, mine)
    assert {k.rsplit(b":", 1)[1] for k in keys} >= {
        b"events",
        b"marks",
        b"session",
        b"jobs",
        b"records",
        b"pending",
    }
    indexes = [KEYS.job_index(j["job_id"]) for j in (running, waiting)]
    for key in [*keys, *indexes]:
        assert await redis_client.ttl(key) == -1, key  # live: nothing expires
    theirs = await assert_globex_sees_none_of_acme(globex, redis_client, session_id)
    # The owner gets every byte of both answers, in order.
    first = await follow_job(acme, running)
    assert text_of(first) == first[-1].json["output_text"] == SLOW_SECRET["text"]
    second = await follow_job(acme, waiting)
    assert second[-1].json["output_text"] == QUICK_SECRET["text"]
    assert second[-1].json["usage"]["input_tokens"] > 1  # its history: the first exchange
    assert theirs["job_id"] not in "".join(e.data or "" for e in first + second)
    # Idle now: the retention clock runs, and then everything of it is gone.
    await until(
        lambda: _all_expiring(redis_client, mine), "the idle session's keys to get their TTL"
    )
    for key in indexes:  # given in the same call as the session's own keys
        assert await redis_client.ttl(key) > 0, key
    await until(lambda: _gone(redis_client, mine), "the idle session to expire", 10)

    async def unindexed() -> bool:
        return not await redis_client.exists(*indexes)

    await until(unindexed, "the idle session's job index entries to expire", 10)
    assert (await acme.get(f"/v1/jobs/{running['job_id']}")).status_code == 404


async def _all_expiring(client: aredis.Redis, s: SessionRef) -> bool:
    keys = await session_keys(client, s)
    return bool(keys) and all([await client.ttl(k) > 0 for k in keys])


async def _gone(client: aredis.Redis, s: SessionRef) -> bool:
    return not await session_keys(client, s)


async def test_a_delete_mid_run_leaves_nothing_a_late_worker_or_another_tenant_can_use(
    tenants: dict[str, httpx.AsyncClient], redis_client: aredis.Redis, session_id: str
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    running = await submit(acme, session_id=session_id, parameters=SLOW_SECRET)
    waiting = await submit(acme, session_id=session_id, parameters=QUICK_SECRET)
    await deltas_seen(acme, running, 5)
    assert (await acme.delete(f"/v1/sessions/{session_id}")).status_code == 204
    mine = SessionRef("acme", session_id)

    async def worker_done() -> bool:  # arq drops a job's keys when it ends (keep_result=0)
        ids = (running["job_id"], waiting["job_id"])
        return not await redis_client.exists(
            *(f"arq:in-progress:{j}" for j in ids), *(f"arq:job:{j}" for j in ids)
        )

    await until(worker_done, "the worker to stop the deleted session's jobs")
    # The worker's late job.cancelled did not recreate anything: only the tombstone is left.
    assert await session_keys(redis_client, mine) == [KEYS.tombstone(mine).encode()]
    for job in (running, waiting):
        assert (await acme.get(f"/v1/jobs/{job['job_id']}")).status_code == 404
    status, _ = await read_stream(acme, running["events_url"])
    assert status == 404
    # The id cannot be brought back while the tombstone lives...
    again = await acme.post("/v1/jobs", json={"input": "hi", "session_id": session_id})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "session_deleted"
    assert int(again.headers["Retry-After"]) > 0
    # ...and the other tenant's session of the same id never sees a byte of it.
    await assert_globex_sees_none_of_acme(globex, redis_client, session_id)


async def test_a_follower_open_across_a_delete_ends_with_session_deleted(
    tenants: dict[str, httpx.AsyncClient], redis_client: aredis.Redis, session_id: str
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    running = await submit(acme, session_id=session_id, parameters=SLOW_SECRET)
    follower = asyncio.create_task(read_stream(acme, f"/v1/sessions/{session_id}/events"))
    await deltas_seen(acme, running, 5)
    assert (await acme.delete(f"/v1/sessions/{session_id}")).status_code == 204
    status, events = await asyncio.wait_for(follower, 20)
    assert status == 200
    assert events[-1].event == "session.deleted"
    assert events[-1].id is None  # not a position to resume from
    assert {e.json["job_id"] for e in events[:-1]} == {running["job_id"]}
    # The same id under the other tenant, written afterwards, is another session.
    await assert_globex_sees_none_of_acme(globex, redis_client, session_id)
