"""Publishing one job attempt's events: stamp, encode once, hand to the process's batcher.

`emit` never waits for Redis while the buffer has room; the worker's `Batcher` sends the
pending events of every job in one round (see `worker/batcher.py`). Appends are
idempotent by `seq` (the script skips seqs it already has), so a round whose reply was
lost to a dropped connection is simply sent again.

Adaptive coalescing (`behind_s`, on by default): a text or thinking delta that arrives
while the job's previous delta has been waiting for an append round for `behind_s` or
longer (the stream is behind: rounds take longer under load) is merged into it instead
of becoming an event of its own. A stream that keeps up never merges, so it adds no
latency and keeps the provider's chunking; an overloaded one sends fewer, larger events
instead of falling further behind. The merged event keeps
its seq (seqs stay dense) and the `ts` of its first delta; its text is the
concatenation, so the deltas still add up to `output_text`. Events are encoded when a
round takes them, after the last merge.

Optionally (`coalesce_s` > 0) consecutive text or thinking deltas of one step are merged
for up to that long into one event: fewer, larger events for clients and Redis, at the
price of that much added latency. Any other event releases the held delta first, so
order is kept.
"""

import asyncio

from spool.shared.ids import now_ms
from spool.shared.streams import Append, Outgoing
from spool.worker.batcher import Batcher
from spool_client.events import Event, TextDelta, ThinkingDelta, encoder, event_type


class Publisher:
    def __init__(
        self,
        batcher: Batcher,
        session_id: str,
        job_id: str,
        attempt: int,
        first_seq: int,
        *,
        max_buffer: int = 10_000,
        coalesce_s: float = 0.0,
        behind_s: float = -1.0,
    ) -> None:
        self._batcher = batcher
        self._session_id = session_id
        self._job_id = job_id
        self._attempt = attempt
        self._seq = first_seq
        self._pending: list[Event] = []  # stamped, not yet written
        self._taken = 0  # how many of `_pending` the round in flight carries
        self._behind_ms = behind_s * 1000  # negative: never merge
        self.merged = 0  # deltas merged into the event before them (adaptive coalescing)
        self._max_buffer = max_buffer
        self._room = asyncio.Event()
        self._room.set()
        self._coalesce_s = coalesce_s
        self._held: TextDelta | ThinkingDelta | None = None
        self._held_timer: asyncio.TimerHandle | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._error: BaseException | None = None

    async def emit(self, event: Event) -> None:
        """Stamp `event` with job id, seq and time, and queue it for appending."""
        if self._error is not None:
            raise self._error
        while len(self._pending) >= self._max_buffer:  # Redis is slow or away: back-pressure
            self._room.clear()
            await self._room.wait()
            if self._error is not None:
                raise self._error
        if self._coalesce_s > 0 and isinstance(event, TextDelta | ThinkingDelta):
            self._hold(event)
            return
        self._release()
        self._push(event)

    async def flush(self) -> None:
        """Wait until everything emitted so far is in Redis."""
        self._release()
        await self._idle.wait()
        if self._error is not None:
            raise self._error

    # -- coalescing ----------------------------------------------------------------

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
        if isinstance(event, TextDelta | ThinkingDelta) and self._merge(event):
            return
        event.job_id = self._job_id
        event.seq = self._seq
        event.ts = now_ms()
        self._seq += 1
        self._pending.append(event)
        self._idle.clear()
        self._batcher.ready(self)

    def _merge(self, delta: TextDelta | ThinkingDelta) -> bool:
        """Merge `delta` into the last event if that is a delta of the same kind that has
        waited for a round for `behind_s` or longer."""
        if self._behind_ms < 0 or len(self._pending) <= self._taken:
            return False
        last = self._pending[-1]
        if not isinstance(last, type(delta)) or last.step != delta.step:
            return False
        if now_ms() - last.ts < self._behind_ms:
            return False
        last.delta += delta.delta
        self.merged += 1
        return True

    # -- the batcher's side (worker.batcher.Source) ------------------------------------

    def take(self, limit: int) -> Append | None:
        if self._error is not None or not self._pending:
            return None
        batch = self._pending[:limit]
        self._taken = len(batch)
        encoded = [Outgoing(event_type(e), e.seq, encoder.encode(e)) for e in batch]
        return Append(self._session_id, self._job_id, self._attempt, encoded)

    def written(self, count: int) -> None:
        del self._pending[:count]
        self._taken = 0
        self._room.set()
        if self._pending:
            self._batcher.ready(self)
        else:
            self._idle.set()

    def failed(self, error: BaseException) -> None:
        self._error = error
        self._taken = 0
        self._room.set()
        self._idle.set()
