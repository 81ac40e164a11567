"""Publishing one job attempt's events: stamp, encode once, append in pipelined batches.

`emit` never waits for Redis while the buffer has room: a background flusher sends
whatever accumulated while the previous append was in flight as one Lua call, so
batches grow with load and an idle stream pays one round trip per event. Appends are
idempotent by `seq` (the script skips seqs it already has), so a batch whose reply was
lost to a dropped connection is simply sent again.

Optionally (`coalesce_s` > 0) consecutive text or thinking deltas of one step are merged
for up to that long into one event: fewer, larger events for clients and Redis, at the
price of that much added latency. Any other event releases the held delta first, so
order is kept.
"""

import asyncio
import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.events import Event, TextDelta, ThinkingDelta, encoder, event_type
from shared.ids import now_ms
from shared.streams import Outgoing, StreamClosed, StreamWriter

log = logging.getLogger(__name__)

MAX_BATCH = 256


class Publisher:
    def __init__(
        self,
        writer: StreamWriter,
        session_id: str,
        job_id: str,
        attempt: int,
        first_seq: int,
        *,
        max_buffer: int = 10_000,
        retry_for_s: float = 60.0,
        coalesce_s: float = 0.0,
    ) -> None:
        self._writer = writer
        self._session_id = session_id
        self._job_id = job_id
        self._attempt = attempt
        self._seq = first_seq
        self._pending: list[Outgoing] = []
        self._max_buffer = max_buffer
        self._room = asyncio.Event()
        self._room.set()
        self._coalesce_s = coalesce_s
        self._held: TextDelta | ThinkingDelta | None = None
        self._held_timer: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._retry_for_s = retry_for_s
        self._error: BaseException | None = None
        self._task = asyncio.create_task(self._run(), name=f"publisher:{job_id}")

    async def emit(self, event: Event) -> None:
        """Stamp `event` with job id, seq and time, and queue it for appending."""
        if self._error is not None:
            raise self._error
        while len(self._pending) >= self._max_buffer:  # Redis is slow or away: back-pressure
            self._room.clear()
            await self._room.wait()
        if self._coalesce_s > 0 and isinstance(event, TextDelta | ThinkingDelta):
            self._hold(event)
            return
        self._release()
        self._push(event)

    def _hold(self, delta: TextDelta | ThinkingDelta) -> None:
        held = self._held
        if held is not None and type(held) is type(delta) and held.step == delta.step:
            held.delta += delta.delta
            return
        self._release()
        self._held = delta
        loop = asyncio.get_running_loop()
        self._held_timer = loop.call_later(self._coalesce_s, self._release)

    def _release(self) -> None:
        """Queue the held delta, if any."""
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer = None
        if self._held is not None:
            held, self._held = self._held, None
            self._push(held)

    def _push(self, event: Event) -> None:
        event.job_id = self._job_id
        event.seq = self._seq
        event.ts = now_ms()
        self._seq += 1
        self._pending.append(Outgoing(event_type(event), event.seq, encoder.encode(event)))
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything emitted so far is in Redis."""
        self._release()
        await self._idle.wait()
        if self._error is not None:
            raise self._error

    async def aclose(self) -> None:
        """Flush, then stop the flusher."""
        try:
            await self.flush()
        finally:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                try:
                    await self._append(batch)
                except BaseException as exc:
                    self._error = exc
                    self._idle.set()
                    raise
                del self._pending[: len(batch)]
                self._room.set()
            self._idle.set()

    async def _append(self, batch: list[Outgoing]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_for_s
        delay = 0.05
        while True:
            try:
                await self._writer.append(self._session_id, self._job_id, self._attempt, batch)
                return
            except StreamClosed:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if loop.time() + delay > deadline:
                    raise
                log.warning(
                    "append for %s failed (%s); retrying in %.2fs", self._job_id, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
