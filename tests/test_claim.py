"""The workers' claim script against a real Redis: each tenant within its running cap,
another tenant's job found even behind more capped jobs than arq reads per poll, and
running jobs out of the polls' way until their lease lapses."""

from collections.abc import AsyncIterator

import pytest
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from spool.shared.connections import open_redis
from spool.shared.ids import now_ms
from spool.shared.keys import Keys
from spool.shared.metrics import SCAN_LIMIT, QueueGauges
from spool.worker.claim import Claimed, Claimer
from spool.worker.lifecycle import Leases

pytestmark = pytest.mark.inprocess

KEYS = Keys("claimtest")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = open_redis(redis_url, 2)
    yield client
    await client.aclose()


async def queue_jobs(redis: Redis, tenant: str, count: int, first_score: int) -> list[str]:
    ids = [f"{tenant}-job-{i}" for i in range(count)]
    async with redis.pipeline(transaction=False) as pipe:
        for i, job_id in enumerate(ids):
            pipe.zadd(KEYS.queue, {job_id: first_score + i})
            pipe.set(KEYS.job_index(job_id), f"{tenant}/s-{i}")
        await pipe.execute()
    return ids


async def test_a_capped_tenant_leaves_the_slot_to_a_job_behind_its_read_window(
    redis: Redis,
) -> None:
    acme = await queue_jobs(redis, "acme", 150, first_score=1)
    globex = await queue_jobs(redis, "globex", 1, first_score=1000)
    claimer = Claimer(redis, KEYS, lease_s=10, max_running=1)
    window = acme[:100]  # what arq's poll hands the worker: only acme's jobs
    claimed = await claimer.claim(KEYS.queue, window, 4, now_ms())
    assert [c.job_id for c in claimed] == [acme[0], globex[0]]
    assert await redis.zrange(KEYS.running("acme"), 0, -1) == [acme[0].encode()]
    assert await redis.zrange(KEYS.running("globex"), 0, -1) == [globex[0].encode()]
    # the next poll: acme is still at its cap, globex has nothing more
    again = await claimer.claim(KEYS.queue, window, 4, now_ms())
    assert again == []


async def test_by_default_a_tenant_alone_may_use_every_slot(redis: Redis) -> None:
    acme = await queue_jobs(redis, "acme", 10, first_score=1)
    await redis.zadd(KEYS.workers, {"w1|4": now_ms() + 60_000})  # capacity 4: half is 2
    claimer = Claimer(redis, KEYS, lease_s=10, max_running=0)
    claimed = await claimer.claim(KEYS.queue, acme, 4, now_ms())
    assert len(claimed) == 4  # no other tenant has jobs: no cap
    await redis.zadd(KEYS.tenants, {"acme": now_ms() + 60_000, "globex": now_ms() + 60_000})
    more = await claimer.claim(KEYS.queue, acme, 4, now_ms())
    assert more == []  # two busy tenants: acme's 4 running are over its half (2)


async def test_the_claim_reads_the_queue_itself_in_order_skipping_running_and_future_jobs(
    redis: Redis,
) -> None:
    """The worker's poll: the window is read inside the script (one round trip)."""
    now = now_ms()
    acme = await queue_jobs(redis, "acme", 6, first_score=1)
    later = await queue_jobs(redis, "later", 1, first_score=now + 60_000)  # not due yet
    claimer = Claimer(redis, KEYS, lease_s=10, max_running=1_000_000)
    first = await claimer.claim(KEYS.queue, 100, 2, now)
    assert [(c.job_id, c.score) for c in first] == [(acme[0], 1), (acme[1], 2)]
    # the claimed jobs stay queued (as in arq), due when their lease lapses
    for job in acme[:2]:
        assert await redis.zscore(KEYS.queue, job) == now + 10_000
    rest = await claimer.claim(KEYS.queue, 100, 10, now_ms())
    assert [c.job_id for c in rest] == acme[2:]
    assert later[0] not in [c.job_id for c in first + rest]
    assert await claimer.claim(KEYS.queue, 100, 10, now_ms()) == []


async def test_running_jobs_are_not_in_the_polls_window_until_their_lease_lapses(
    redis: Redis,
) -> None:
    """A poll reads only due jobs: jobs running ahead do not fill its window (arq's rule
    walked every running job at the head of the queue on every wake-up)."""
    now = now_ms()
    jobs = await queue_jobs(redis, "acme", 5, first_score=1)
    claimer = Claimer(redis, KEYS, lease_s=10, max_running=1_000_000)
    running = await claimer.claim(KEYS.queue, 2, 2, now)
    assert [c.job_id for c in running] == jobs[:2]
    # a window of two ids: the two running jobs at the head are not what it reads
    nxt = await claimer.claim(KEYS.queue, 2, 1, now)
    assert [(c.job_id, c.score) for c in nxt] == [(jobs[2], 3)]
    # the heartbeat moves a running job's score on with its lease
    leases = Leases(redis, KEYS, lease_s=10)
    await leases.renew({jobs[0]: "acme", jobs[1]: "acme"})
    renewed = await redis.zscore(KEYS.queue, jobs[0])
    assert renewed is not None
    assert renewed >= now + 10_000
    assert await redis.pttl(in_progress_key_prefix + jobs[0]) <= 10_000
    # jobs[1]'s worker died: its in-progress key lapsed; once its score is due, it is
    # claimed again (here: a poll as if the lease's time had passed)
    await redis.delete(in_progress_key_prefix + jobs[1])
    later = now + 60_000
    again = await claimer.claim(KEYS.queue, 100, 10, later)
    # queued jobs first (by score), then the lapsed one; jobs[0] and jobs[2] still leased
    assert [c.job_id for c in again] == [*jobs[3:], jobs[1]]


async def test_a_renewal_leaves_the_score_of_a_job_that_was_just_handed_back(
    redis: Redis,
) -> None:
    """A job's end or hand-back deletes its in-progress key and sets its score; a renewal
    racing with it must not push the job's next run back by a lease."""
    now = now_ms()
    (job,) = await queue_jobs(redis, "acme", 1, first_score=1)
    claimer = Claimer(redis, KEYS, lease_s=10, max_running=1_000_000)
    assert [c.job_id for c in await claimer.claim(KEYS.queue, 10, 1, now)] == [job]
    await redis.delete(in_progress_key_prefix + job)  # handed back: due at once again
    await redis.zadd(KEYS.queue, {job: 1}, xx=True)
    await Leases(redis, KEYS, lease_s=10).renew({job: "acme"})
    assert await redis.zscore(KEYS.queue, job) == 1
    (again,) = await claimer.claim(KEYS.queue, 10, 1, now_ms())
    assert (again.job_id, again.score, again.job_try) == (job, 1, 2)


async def test_a_claim_starts_each_job_as_arqs_run_job_would_and_holds_its_lease(
    redis: Redis,
) -> None:
    """What arq's `run_job` reads first (the payload, the try count) comes with the claim,
    and the in-progress key lives for the lease, not for arq's job timeout."""
    jobs = await queue_jobs(redis, "acme", 2, first_score=1)
    await redis.set(job_key_prefix + jobs[0], b"payload-0")  # jobs[1]'s payload expired
    await redis.set(retry_key_prefix + jobs[0], 2)  # tried twice before
    claimer = Claimer(redis, KEYS, lease_s=10, max_running=1_000_000)
    first, second = await claimer.claim(KEYS.queue, 10, 2, now_ms())
    assert first == Claimed(jobs[0], 1, "acme", b"payload-0", 3)
    assert second == Claimed(jobs[1], 2, "acme", None, 1)
    for job in jobs:
        assert 0 < await redis.pttl(in_progress_key_prefix + job) <= 10_000
        assert await redis.ttl(retry_key_prefix + job) > 86_400


async def test_the_queue_gauges_count_running_jobs_behind_a_long_backlog(redis: Redis) -> None:
    """Running jobs sit at the end of the queue (their lease expiry): the running count
    reads the queue's end, so a backlog longer than it reads hides none of them."""
    jobs = await queue_jobs(redis, "acme", SCAN_LIMIT + 2, first_score=1)
    claimer = Claimer(redis, KEYS, lease_s=10, max_running=1_000_000)
    assert len(await claimer.claim(KEYS.queue, 10, 2, now_ms())) == 2
    registry = CollectorRegistry()
    await QueueGauges(registry).refresh(redis, KEYS)
    assert registry.get_sample_value("spool_queue_running") == 2
    assert registry.get_sample_value("spool_queue_depth") == len(jobs) - 2
