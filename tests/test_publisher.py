"""The worker's publisher and batcher against a real Redis: adaptive coalescing.

Deltas that arrive while the delta before them has waited `behind_s` for an append
round merge into it; nothing else merges, seqs stay dense and the text is the same.
`emit` does not yield while the buffer has room, so events emitted back to back all
wait for the first round.
"""

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
from redis.asyncio import Redis

from spool.shared.connections import open_redis
from spool.shared.keys import Keys, SessionRef
from spool.shared.streams import Outgoing, StreamWriter, decode_notices
from spool.worker.batcher import MAX_ROUND_BYTES, Batcher
from spool.worker.publisher import Publisher
from spool_client.events import StepFinished, StepStarted, TextDelta, ThinkingDelta, Usage

pytestmark = pytest.mark.inprocess


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = open_redis(redis_url, 4)
    yield client
    await client.aclose()


KEYS = Keys("spooltest")


async def queued(redis: Redis, name: str) -> tuple[Batcher, SessionRef]:
    """A batcher, and a session whose job `j1` is queued (seq 0), as the API leaves it."""
    writer, session = StreamWriter(redis, KEYS, retention_s=60), SessionRef("acme", name)
    await writer.append(session, "j1", 0, [Outgoing("job.queued", 0, b"{}")])
    return Batcher(writer), session


async def stored(redis: Redis, session: SessionRef) -> list[dict[str, object]]:
    rows = await redis.xrange(KEYS.stream(session))
    return [msgspec.json.decode(r[1][b"d"]) for r in rows[1:]]  # after job.queued


async def test_waiting_deltas_merge_and_seqs_stay_dense(redis: Redis) -> None:
    batcher, session = await queued(redis, "p1")
    pub = Publisher(batcher, session, "j1", 1, first_seq=1, behind_s=0)
    await pub.emit(StepStarted(step=0))
    for word in ("Hello ", "durable ", "world"):
        await pub.emit(TextDelta(step=0, delta=word))
    await pub.emit(ThinkingDelta(step=0, delta="hm"))  # another kind: its own event
    await pub.emit(TextDelta(step=0, delta="!"))
    await pub.emit(StepFinished(step=0, finish_reason="stop", usage=Usage()))
    await pub.emit(TextDelta(step=1, delta="next"))  # after another event: its own
    await pub.flush()
    await batcher.aclose()

    events = await stored(redis, session)
    assert [(e["type"], e.get("delta")) for e in events] == [
        ("step.started", None),
        ("text.delta", "Hello durable world"),
        ("thinking.delta", "hm"),
        ("text.delta", "!"),
        ("step.finished", None),
        ("text.delta", "next"),
    ]
    assert [e["seq"] for e in events] == list(range(1, 7))
    assert pub.merged == 2


async def test_a_delta_already_written_is_never_merged_into(redis: Redis) -> None:
    batcher, session = await queued(redis, "p2")
    pub = Publisher(batcher, session, "j1", 1, first_seq=1, behind_s=0)
    await pub.emit(TextDelta(step=0, delta="one "))
    await pub.flush()  # written: the next delta is an event of its own
    await pub.emit(TextDelta(step=0, delta="two"))
    await pub.flush()
    await batcher.aclose()
    events = await stored(redis, session)
    assert [(e["seq"], e["delta"]) for e in events] == [(1, "one "), (2, "two")]
    assert pub.merged == 0


async def test_a_stream_that_is_not_behind_keeps_its_chunks(redis: Redis) -> None:
    batcher, session = await queued(redis, "p3")
    pub = Publisher(batcher, session, "j1", 1, first_seq=1, behind_s=60)
    for word in ("Hel", "lo"):  # waiting, but for far less than behind_s
        await pub.emit(TextDelta(step=0, delta=word))
    await pub.flush()
    await batcher.aclose()
    events = await stored(redis, session)
    assert [e["delta"] for e in events] == ["Hel", "lo"]
    assert pub.merged == 0


async def test_rounds_survive_their_connection_being_killed(redis: Redis) -> None:
    """The batcher sends rounds on a connection it keeps; when Redis drops it, the round
    is sent again on a fresh one and every event is in the stream exactly once."""
    batcher, session = await queued(redis, "p4")
    pub = Publisher(batcher, session, "j1", 1, first_seq=1)
    await pub.emit(TextDelta(step=0, delta="before "))
    await pub.flush()
    rounds = [c for c in await redis.client_list() if c["cmd"] == "evalsha"]
    assert rounds, "the connection that sent the round"
    for client in rounds:
        await redis.client_kill_filter(_id=client["id"])
    for word in ("after ", "the ", "drop"):
        await pub.emit(TextDelta(step=0, delta=word))
    await pub.flush()
    await batcher.aclose()
    events = await stored(redis, session)
    assert "".join(str(e["delta"]) for e in events) == "before after the drop"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_a_round_stops_taking_jobs_once_it_holds_its_bytes(redis: Redis) -> None:
    """Five jobs' 400 KB deltas, ready at once, go out in rounds of about a megabyte: each
    round is one script call and one message on the notices channel, which stays far
    below what Redis lets a subscriber fall behind by."""
    pubsub = redis.pubsub()
    await pubsub.subscribe(KEYS.notices)
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
    batcher, first = await queued(redis, "b0")
    sessions = [first] + [(await queued(redis, f"b{i}"))[1] for i in range(1, 5)]
    for _ in sessions:  # their `job.queued`
        assert await pubsub.get_message(timeout=5) is not None
    big = "x" * (400 << 10)
    pubs = [Publisher(batcher, s, "j1", 1, first_seq=1) for s in sessions]
    for pub in pubs:  # all ready before the first round starts
        await pub.emit(TextDelta(step=0, delta=big))
    for pub in pubs:
        await pub.flush()
    await batcher.aclose()
    sizes, announced = [], []
    while (message := await pubsub.get_message(timeout=1)) is not None:
        sizes.append(len(message["data"]))
        announced += [notice[0] for notice in decode_notices(message["data"])]
    await pubsub.aclose()
    assert announced == [KEYS.tag(s) for s in sessions]  # each once, in order
    assert len(sizes) >= 2
    assert max(sizes) < MAX_ROUND_BYTES + (500 << 10)  # the budget and one job's batch
    for session in sessions:
        assert [e["delta"] for e in await stored(redis, session)] == [big]


async def test_events_emitted_while_their_round_is_in_flight_go_in_a_later_round(
    redis: Redis,
) -> None:
    """A publisher readies the batcher only when its buffer was empty: events emitted while
    its earlier ones are in the round in flight are sent once that round is written. Many
    jobs emitting between rounds all end up complete, in order, seqs dense."""
    batcher, first = await queued(redis, "f0")
    sessions = [first] + [(await queued(redis, f"f{i}"))[1] for i in range(1, 20)]
    pubs = [Publisher(batcher, s, "j1", 1, first_seq=1) for s in sessions]
    words = [f"w{i} " for i in range(100)]

    async def one(pub: Publisher) -> None:
        for word in words:
            await pub.emit(TextDelta(step=0, delta=word))
            await asyncio.sleep(0)  # let the batcher's rounds interleave with the emits
        await pub.flush()

    await asyncio.gather(*(one(p) for p in pubs))
    await batcher.aclose()
    for session in sessions:
        events = await stored(redis, session)
        assert [e["delta"] for e in events] == words
        assert [e["seq"] for e in events] == list(range(1, len(words) + 1))
