"""Pacing many streams with one timer per millisecond (the `simulated` model).

`asyncio.sleep` per token costs a timer per stream per token: 1,000 streams at 50 tokens/s
are 50,000 timers a second in one worker. Here every stream due within the same
millisecond waits on that millisecond's one timer, which wakes them all; a stream that is
already due does not wait at all (it yields once, so that others run).
"""

import asyncio
import math
from weakref import WeakKeyDictionary


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


_pacers: "WeakKeyDictionary[asyncio.AbstractEventLoop, Pacer]" = WeakKeyDictionary()


def pacer() -> Pacer:
    """The running loop's pacer."""
    loop = asyncio.get_running_loop()
    found = _pacers.get(loop)
    if found is None:
        found = _pacers[loop] = Pacer(loop)
    return found
