"""One flusher for every job of a worker process.

Each round takes every publisher's pending events (up to `MAX_BATCH` per job,
`MAX_ROUND` in all, and no more jobs once the round holds `MAX_ROUND_BYTES` of data) and
sends them as ONE script call (`APPEND_MANY_LUA`): 1,000 streams
cost one round trip and one script invocation per round, not 1,000 of either. Once the
process is busy (the last round carried `BUSY_ROUND_JOBS` jobs or more), rounds start at
least `MIN_ROUND_S` apart: while a round is in flight or that gap runs, new events
accumulate for the next (and deltas merge, see `worker/publisher.py`), so rounds grow
with load; a lone job's events, or an event after a quiet spell, go out at once. A connection error
retries the round with backoff (appends are idempotent by seq); a job whose append is
refused (its stream closed) fails alone.
"""

import asyncio
import logging
from typing import Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import TryAgainError

from spool.shared.errors import SpoolError
from spool.shared.streams import Append, StreamWriter
from spool.worker.metrics import APPEND_SECONDS, EVENTS_APPENDED

log = logging.getLogger(__name__)

MAX_BATCH = 256  # events of one job per round
MAX_ROUND = 4096  # events of all jobs per round
# data of all jobs per round, give or take one job's batch: the script call, and the one
# pub/sub message that announces it to every API (`shared/streams.py`), stay far below
# Redis's pub/sub output buffer limits (a subscriber past 32 MB is disconnected)
MAX_ROUND_BYTES = 1 << 20
MIN_ROUND_S = 0.005  # between the starts of two rounds, once the process is busy:
BUSY_ROUND_JOBS = 8  # a round carried this many jobs (a lone job's events never wait)


class Source(Protocol):
    """A publisher, as the batcher sees it."""

    def take(self, limit: int) -> Append | None: ...

    def written(self, count: int) -> None: ...

    def failed(self, error: BaseException) -> None: ...


class Batcher:
    def __init__(self, writer: StreamWriter, *, retry_for_s: float = 60.0) -> None:
        self._writer = writer
        self._retry_for_s = retry_for_s
        self._ready: dict[Source, None] = {}  # insertion-ordered set
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def ready(self, source: Source) -> None:
        """`source` has events to send."""
        self._ready[source] = None
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="stream-batcher")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        started, jobs = 0.0, 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._ready:
                gap = started + MIN_ROUND_S - loop.time()
                if gap > 0 and jobs >= BUSY_ROUND_JOBS:
                    await asyncio.sleep(gap)
                started = loop.time()
                # not kept in a local: an idle batcher must not hold its last round's jobs
                jobs = await self._round(self._take())

    def _take(self) -> list[tuple[Source, Append]]:
        """The next round: ready sources, in the order they became ready, within `MAX_ROUND`
        events and (give or take the last source's batch) `MAX_ROUND_BYTES`."""
        taken: list[tuple[Source, Append]] = []
        budget, room = MAX_ROUND, MAX_ROUND_BYTES
        for source in list(self._ready):
            if budget <= 0 or room <= 0:
                break
            del self._ready[source]
            append = source.take(min(MAX_BATCH, budget))
            if append is not None:
                taken.append((source, append))
                budget -= len(append.batch)
                room -= sum(len(out.data) for out in append.batch)
        return taken

    async def _round(self, taken: list[tuple[Source, Append]]) -> int:
        """Send one round; returns how many jobs it carried."""
        if not taken:
            return 0
        try:
            outcomes = await self._send([a for _, a in taken])
        except Exception as exc:  # Redis stayed away past the retry window
            for source, _ in taken:
                source.failed(exc)
            return len(taken)
        appended = 0
        for (source, append), outcome in zip(taken, outcomes, strict=True):
            if isinstance(outcome, SpoolError):
                source.failed(outcome)
            else:
                source.written(len(append.batch))
                appended += len(append.batch)
        EVENTS_APPENDED.inc(appended)
        return len(taken)

    async def _send(self, appends: list[Append]) -> list[int | SpoolError]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_for_s
        delay = 0.05
        while True:
            try:
                with APPEND_SECONDS.time():
                    return await self._writer.append_many(appends)
            except (RedisConnectionError, RedisTimeoutError, TryAgainError, OSError) as exc:
                # TRYAGAIN: a cluster slot is being migrated; it ends with the migration
                if loop.time() + delay > deadline:
                    raise
                log.warning("stream appends failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
