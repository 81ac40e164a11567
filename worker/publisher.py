"""Publishing one job attempt's events: stamp, encode once, hand to the process's batcher.

`emit` never waits for Redis while the buffer has room; the worker's `Batcher` sends the
pending events of every job in one pipelined round (see `worker/batcher.py`). Appends are
idempotent by `seq` (the script skips seqs it already has), so a round whose reply was
lost to a dropped connection is simply sent again.

Optionally (`coalesce_s` > 0) consecutive text or thinking deltas of one step are merged
for up to that long into one event: fewer, larger events for clients and Redis, at the
price of that much added latency. Any other event releases the held delta first, so
order is kept.

Adaptive coalescing (`behind_s`, on by default in the worker): a text or thinking delta
that arrives while the job's previous delta has been waiting for an append round for
`behind_s` or longer (the stream is behind: rounds take longer under load) is merged into
it instead of becoming an event of its own (re-encoded; never past the event size bound).
A stream that keeps up never merges, so it adds no latency and keeps the provider's
chunking; an overloaded one sends fewer, larger events instead of falling further behind.
The merged event keeps its seq (seqs stay dense) and the `ts` of its first delta; its text
is the concatenation, so the deltas still add up to `output_text`.

Bounds (contract §4): a text or thinking delta larger than `max_event_bytes` is split
into several deltas (their concatenation is unchanged), a tool result's output is cut
to it; past `max_events` events or `max_bytes` bytes in one job, `emit` raises
`OutputLimit` (the terminal event that follows is always let through).
"""

import asyncio

from spool.shared.ids import now_ms
from spool.shared.keys import SessionRef
from spool.shared.streams import Append, Outgoing
from spool.worker.batcher import Batcher
from spool.worker.errors import OutputLimit
from spool_client.events import (
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    TextDelta,
    ThinkingDelta,
    ToolResult,
    encoder,
)

UNLIMITED = 1 << 62
TERMINAL_EVENTS: frozenset[type[Event]] = frozenset({JobCompleted, JobFailed, JobCancelled})

WORST_JSON_BYTES_PER_CHAR = 6  # `\u001f`: a control character escaped in JSON
CUT_MARK = "\n[output cut: over the event size limit]"


class Publisher:
    def __init__(
        self,
        batcher: Batcher,
        session: SessionRef,
        job_id: str,
        attempt: int,
        first_seq: int,
        *,
        max_buffer: int = 10_000,
        coalesce_s: float = 0.0,
        behind_s: float = -1.0,
        max_events: int = UNLIMITED,
        max_bytes: int = UNLIMITED,
        max_event_bytes: int = UNLIMITED,
    ) -> None:
        self._batcher = batcher
        self._session = session
        self._job_id = job_id
        self._attempt = attempt
        self._seq = first_seq
        self._pending: list[Outgoing] = []
        self._max_buffer = max_buffer
        # `emit` waits on `_room` while the buffer is full, `flush` on `_idle` while events
        # are pending; each is set only when someone waits (per round and job, a call less)
        self._room = asyncio.Event()
        self._room_awaited = False
        self._coalesce_s = coalesce_s
        self._held: TextDelta | ThinkingDelta | None = None
        self._held_timer: asyncio.TimerHandle | None = None
        self._idle = asyncio.Event()
        self._idle_awaited = False
        self._error: BaseException | None = None
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._max_event_bytes = max_event_bytes
        # the most characters one delta may carry (see the event size bound)
        self._piece_chars = max(1, max_event_bytes // WORST_JSON_BYTES_PER_CHAR)
        self._bytes = 0
        self._behind_ms = behind_s * 1000  # negative: never merge
        self._taken = 0  # how many of `_pending` the round in flight carries
        self._last_delta: TextDelta | ThinkingDelta | None = None  # `_pending[-1]`'s event
        self.merged = 0  # deltas merged into the one before them (adaptive coalescing)

    async def emit(self, event: Event) -> None:
        """Stamp `event` with job id, seq and time, and queue it for appending."""
        await self.room()
        self.emit_nowait(event)

    async def room(self) -> None:
        """Return once `emit_nowait` may be called (raises the publisher's failure)."""
        if self._error is not None:
            raise self._error
        while len(self._pending) >= self._max_buffer:  # Redis is slow or away: back-pressure
            self._room.clear()
            self._room_awaited = True
            await self._room.wait()
            if self._error is not None:
                raise self._error

    def has_room(self) -> bool:
        """Whether `emit_nowait` may be called (the buffer is not full)."""
        return len(self._pending) < self._max_buffer

    def emit_nowait(self, event: Event) -> None:
        """`emit` for a caller that checked `has_room` (the simulated model's scheduler)."""
        if self._error is not None:
            raise self._error
        kind = type(event)
        if kind is TextDelta or kind is ThinkingDelta:  # per token: the shortest way
            if self._seq >= self._max_events or self._bytes >= self._max_bytes:
                self.check_limits()
            if self._coalesce_s > 0:
                self._hold(event)  # type: ignore[arg-type]
                return
            if self._held is not None:
                self._release()
            self._push_delta(event)  # type: ignore[arg-type]
            return
        if kind not in TERMINAL_EVENTS:
            self.check_limits()
        self._release()
        self._push(event)

    def check_limits(self) -> None:
        """Raise `OutputLimit` if the job may emit no more (before the caller records output
        it is about to emit)."""
        if self._seq >= self._max_events:
            raise OutputLimit(f"the job emitted over {self._max_events} events")
        if self._bytes >= self._max_bytes:
            raise OutputLimit(f"the job emitted over {self._max_bytes} bytes")

    async def flush(self) -> None:
        """Wait until everything emitted so far is in Redis."""
        self._release()
        if self._pending and self._error is None:
            self._idle.clear()
            self._idle_awaited = True
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
        kind = type(event)
        if kind is TextDelta or kind is ThinkingDelta:
            self._push_delta(event)  # type: ignore[arg-type]
            return
        if isinstance(event, ToolResult) and len(event.output) > self._piece_chars:
            event.output = event.output[: self._piece_chars] + CUT_MARK
        self._push_one(event, now_ms())
        self._last_delta = None

    def _push_delta(self, delta: TextDelta | ThinkingDelta) -> None:
        """Queue a delta (split when over the event size bound), merged into the pending one
        before it if the stream is behind."""
        if len(delta.delta) > self._piece_chars:
            text, piece, kind = delta.delta, self._piece_chars, type(delta)
            for start in range(0, len(text), piece):
                part = text[start : start + piece]
                self._push_delta(kind(step=delta.step, chain_step=delta.chain_step, delta=part))
            return
        now = now_ms()
        if self._last_delta is not None and self._merge(delta, now):
            return
        self._push_one(delta, now)
        self._last_delta = delta

    def _push_one(self, event: Event, now: int) -> None:
        event.job_id = self._job_id
        event.seq = seq = self._seq
        event.ts = now
        self._seq = seq + 1
        data = encoder.encode(event)
        self._bytes += len(data)
        pending = self._pending
        pending.append(Outgoing(_tags.get(type(event)) or _tag(type(event)), seq, data))
        if len(pending) == 1:
            # the batcher has this publisher as long as it has pending events: it is ready
            # (or its events are in the round in flight, whose `written` readies it again)
            self._batcher.ready(self)

    def _merge(self, delta: TextDelta | ThinkingDelta, now: int) -> bool:
        """Merge `delta` into the last pending event if that is a delta of the same kind that
        no round has taken yet and that has waited `behind_s` or longer."""
        last = self._last_delta
        if (
            last is None
            or self._behind_ms < 0
            or len(self._pending) <= self._taken
            or type(last) is not type(delta)
            or last.step != delta.step
            or len(last.delta) + len(delta.delta) > self._piece_chars
            or now - last.ts < self._behind_ms
        ):
            return False
        last.delta += delta.delta
        data = encoder.encode(last)
        self._bytes += len(data) - len(self._pending[-1].data)
        self._pending[-1] = Outgoing(_tag(type(last)), last.seq, data)
        self.merged += 1
        return True

    # -- the batcher's side (worker.batcher.Source) ------------------------------------

    def take(self, limit: int) -> Append | None:
        if self._error is not None or not self._pending:
            return None
        batch = self._pending[:limit]
        self._taken = len(batch)
        return Append(self._session, self._job_id, self._attempt, batch)

    def written(self, count: int) -> None:
        pending = self._pending
        del pending[:count]
        self._taken = 0
        if self._room_awaited:
            self._room_awaited = False
            self._room.set()
        if pending:
            self._batcher.ready(self)
            return
        self._last_delta = None
        if self._idle_awaited:
            self._idle_awaited = False
            self._idle.set()

    def failed(self, error: BaseException) -> None:
        self._error = error
        self._taken = 0
        self._room.set()
        self._idle.set()


_tags: dict[type[Event], str] = {}


def _tag(kind: type[Event]) -> str:
    """The `type` tag of events of class `kind` (as `event_type`, looked up once per class)."""
    tag = _tags.get(kind)
    if tag is None:
        found = kind.__struct_config__.tag
        assert isinstance(found, str)
        tag = _tags[kind] = found
    return tag
