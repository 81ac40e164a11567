"""Pacing many simulated streams with one timer per millisecond (the `simulated` model).

`asyncio.sleep` per token costs a timer per stream per token: 1,000 streams at 50 tokens/s
are 50,000 timers a second in one worker. Here every stream due within the same
millisecond waits on that millisecond's one timer.

Two ways to be paced:

- `Pacer.until`: an async generator awaits its next due time (every stream due within the
  same millisecond waits on that millisecond's one timer, which wakes them all; a stream
  already due yields once, so that others run). One task wake-up per chunk.
- `Scheduler.run`: the agent loop hands a `Feed` and a synchronous sink to the process's
  one scheduler, which calls the sink with each chunk at its due time from the
  millisecond's timer, and awaits only the feed's end: no task wake-up, future or
  generator step per chunk (a few µs per event less, most of the worker's CPU for the
  simulated model). A sink that has no room (the job's publisher is full: Redis is slow)
  is asked again the next millisecond; an exception from the sink, or the feed's own
  failure, ends the run with it; a cancelled run is dropped at its next due time. A
  chunk already due when the run starts goes to the sink at once.
"""

import asyncio
import math
from collections.abc import Callable
from typing import Protocol, TypeVar
from weakref import WeakKeyDictionary

from spool.worker.providers.base import Chunk, Sink


class Pacer:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, list[asyncio.Future[None]]] = {}

    async def until(self, due: float) -> None:
        """Return at loop time `due` (rounded up to the millisecond)."""
        slot = math.ceil(due * 1000)
        if slot <= self._loop.time() * 1000:
            await asyncio.sleep(0)
            return
        waiters = self._slots.get(slot)
        if waiters is None:
            waiters = self._slots[slot] = []
            self._loop.call_at(slot / 1000, self._wake, slot)
        waiter: asyncio.Future[None] = self._loop.create_future()
        waiters.append(waiter)
        await waiter

    def _wake(self, slot: int) -> None:
        for waiter in self._slots.pop(slot, ()):
            if not waiter.done():  # a cancelled stream's waiter is done already
                waiter.set_result(None)


class Feed(Protocol):
    """A paced source of chunks (`worker.providers.simulated.Chunks`)."""

    @property
    def due(self) -> float:
        """Loop time of the next chunk."""
        ...

    @property
    def finished(self) -> bool: ...

    def take(self, now: float) -> Chunk:
        """The chunk(s) due at `now` as one chunk (raises the feed's failure)."""
        ...

    def refused(self) -> None:
        """The chunk just taken was not accepted: the sink raised."""
        ...


class _Run:
    __slots__ = ("done", "feed", "room", "sink")

    def __init__(
        self, feed: Feed, sink: Sink, room: Callable[[], bool], done: asyncio.Future[None]
    ) -> None:
        self.feed, self.sink, self.room, self.done = feed, sink, room, done


class Scheduler:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, list[_Run]] = {}

    async def run(self, feed: Feed, sink: Sink, room: Callable[[], bool]) -> None:
        """Hand `feed`'s chunks to `sink` at their due times (while `room()`); returns when
        the feed is finished, raises what the feed or the sink raised.

        A chunk due already (no time to first token) goes to the sink at once, as
        `Pacer.until` yields it: at the next millisecond's tick it would miss the append
        round of the events emitted just before it (`job.started`), and wait for the next
        round (~1 ms of P1 in `spool bench`)."""
        if feed.finished:
            return
        now = self._loop.time()
        if feed.due <= now and room():
            chunk = feed.take(now)
            try:
                sink(chunk)
            except Exception:
                feed.refused()
                raise
            if feed.finished:
                return
        done: asyncio.Future[None] = self._loop.create_future()
        self._at(feed.due, _Run(feed, sink, room, done))
        await done

    def _at(self, due: float, run: _Run) -> None:
        """Add `run` to the slot of `due`, and never to one before the next millisecond."""
        self._slot(run, max(math.ceil(due * 1000), math.floor(self._loop.time() * 1000) + 1))

    def _slot(self, run: _Run, slot: int) -> None:
        runs = self._slots.get(slot)
        if runs is None:
            runs = self._slots[slot] = []
            self._loop.call_at(slot / 1000, self._fire, slot)
        runs.append(run)

    def _fire(self, slot: int) -> None:
        """Hand each of the slot's runs its due chunk and put it back in the slot of its next
        one (never before the next millisecond). Per token this is the worker's hottest
        code: the slot is computed in line, with no call."""
        now = self._loop.time()
        earliest = math.floor(now * 1000) + 1
        slots, ceil = self._slots, math.ceil
        for run in slots.pop(slot, ()):
            if run.done.done():  # cancelled: its task has gone
                continue
            feed = run.feed
            if run.room():
                try:
                    chunk = feed.take(now)
                except Exception as exc:  # the feed's failure
                    run.done.set_exception(exc)
                    continue
                try:
                    run.sink(chunk)
                except Exception as exc:  # the sink's (`OutputLimit`): the chunk not counted
                    feed.refused()
                    run.done.set_exception(exc)
                    continue
                if feed.finished:
                    run.done.set_result(None)
                    continue
            at = ceil(feed.due * 1000)
            if at < earliest:
                at = earliest
            runs = slots.get(at)
            if runs is None:
                self._slot(run, at)
            else:
                runs.append(run)


T = TypeVar("T")
_pacers: "WeakKeyDictionary[asyncio.AbstractEventLoop, Pacer]" = WeakKeyDictionary()
_schedulers: "WeakKeyDictionary[asyncio.AbstractEventLoop, Scheduler]" = WeakKeyDictionary()


def _of_running_loop(
    found: "WeakKeyDictionary[asyncio.AbstractEventLoop, T]",
    make: Callable[[asyncio.AbstractEventLoop], T],
) -> T:
    """The running loop's one `make(loop)`, made on first use."""
    loop = asyncio.get_running_loop()
    one = found.get(loop)
    if one is None:
        one = found[loop] = make(loop)
    return one


def pacer() -> Pacer:
    """The running loop's pacer."""
    return _of_running_loop(_pacers, Pacer)


def scheduler() -> Scheduler:
    """The running loop's scheduler."""
    return _of_running_loop(_schedulers, Scheduler)
