"""An ended stream and its job leave no reference cycles in the API or the worker.

Objects in a cycle outlive their last use until the collector's next full pass, which then
frees a whole wave of ended streams at once: one such pass freed ~700 streams' state in
0.7 s of the API's CPU, a pause for every other stream (`spool bench --phase capacity`,
docs/benchmarks-history.md, seventh round). Freed by reference counting, each stream's state
goes when it ends. The API and a worker run in this test's process (the `inprocess`
tier): with the collector off, an object that a cycle holds stays alive, and the test
looks for the types a stream or a job is made of once every stream has ended.
"""

import asyncio
import contextlib
import gc
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from spool.api.hub import Attached, Topic
from spool.api.transport_writer import RequestResponseCycle, TransportWriter
from spool.worker.generation import Generation
from spool.worker.jobs import Attempt
from spool.worker.publisher import Publisher
from tests.helpers import follow_job, submit, until

pytestmark = pytest.mark.inprocess

STREAMS = 12
# what one followed stream and one job are made of, on each side (uvicorn's request cycle
# is in the list: the scope held it, and it holds the connection)
WATCHED = {Topic, Attached, TransportWriter, RequestResponseCycle, Attempt, Generation, Publisher}
ENDS_WITHIN_S = 10.0
# tokens paced so that each follower catches up and is written to directly (`attach`)
JOB = {"parameters": {"tokens_per_second": 200, "ttft_ms": 0}, "input": "one two three"}


@contextlib.contextmanager
def _collector_off() -> Iterator[None]:
    """No automatic collection: what a reference cycle holds stays alive."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def _name(o: object, port: int) -> str | None:
    """What a watched object is (a request cycle: of which request), None for the rest:
    other objects, and request cycles of other servers (the session's other stacks)."""
    if type(o) not in WATCHED:
        return None
    if type(o) is RequestResponseCycle:
        scope = o.scope  # type: ignore[attr-defined]
        if scope.get("server", (None, None))[1] != port:
            return None
        return f"RequestResponseCycle {scope['method']} {scope['path']}"
    return type(o).__name__


async def _none_left(left: Counter[str], port: int) -> bool:
    """Whether no stream's or job's object is alive (`left`: those that are)."""
    left.clear()
    left.update(name for o in gc.get_objects() if (name := _name(o, port)) is not None)
    return not left


async def _run_streams(http: httpx.AsyncClient, count: int) -> None:
    accepted = [await submit(http, session_id=f"cycles-{i}", **JOB) for i in range(count)]
    await asyncio.gather(*(follow_job(http, a) for a in accepted))


async def test_ended_streams_and_jobs_leave_no_reference_cycles(
    inprocess_http: httpx.AsyncClient,
) -> None:
    left: Counter[str] = Counter()
    port = inprocess_http.base_url.port
    assert port is not None
    # no keep-alive: a connection that stays open rightly holds its last request's cycle
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=inprocess_http.base_url, limits=limits) as http:
        await _run_streams(http, 1)  # first use: scripts loaded (a NOSCRIPT is one cycle)
        with _collector_off():
            await _run_streams(http, STREAMS)
            with contextlib.suppress(AssertionError):  # timed out: `left` says what stayed
                await until(lambda: _none_left(left, port), "the jobs' ends", ENDS_WITHIN_S)
    assert not left, f"alive {ENDS_WITHIN_S:g}s after {STREAMS} streams ended: {dict(left)}"
