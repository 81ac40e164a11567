"""Publishing one job attempt's events: stamp, encode once, append in pipelined batches.

`emit` never waits for Redis while the buffer has room: a background flusher sends
whatever accumulated while the previous append was in flight as one Lua call, so
batches grow with load and an idle stream pays one round trip per event. Appends are
idempotent by `seq` (the script skips seqs it already has), so a batch whose reply was
lost to a dropped connection is simply sent again.
"""

import asyncio
import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.events import Event, encoder, event_type
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
    ) -> None:
        self._writer = writer
        self._session_id = session_id
        self._job_id = job_id
        self._attempt = attempt
        self._seq = first_seq
        self._pending: list[Outgoing] = []
        self._room = asyncio.Semaphore(max_buffer)
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
        await self._room.acquire()
        event.job_id = self._job_id
        event.seq = self._seq
        event.ts = now_ms()
        self._seq += 1
        self._pending.append(Outgoing(event_type(event), event.seq, encoder.encode(event)))
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything emitted so far is in Redis."""
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
                for _ in batch:
                    self._room.release()
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
