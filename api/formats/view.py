"""A format applied to one SSE response: per-job translators, frames with resumable ids.

Each stream entry becomes the frames its job's translator returns for it, encoded by
the one SSE encoder; the last of them carries the entry's `id:`. So a client's
`Last-Event-ID` is always the id of an entry whose frames it has all received, and a
resume from it sends exactly the frames after them.

Formats hold state per job (has `start` been sent, which part is open, ...). A response
that meets a job in the middle (a resume, or a session followed from an id) first feeds
that job's translator the job's earlier events, from its `job.queued` up to the entry,
and drops their frames: the state, and hence every frame after, is exactly what an
uninterrupted response would have had.
"""

from collections.abc import Iterable
from typing import Protocol

from redis.asyncio import Redis

from spool.api.formats import Format
from spool.api.formats.base import Translator, decode_event
from spool.api.sse_encoder import encode
from spool.shared.ids import StreamId, format_stream_id
from spool.shared.keys import Keys, SessionRef
from spool.shared.streams import job_marks
from spool_client.events import TERMINAL_TYPES

_QUEUED = b"job.queued"
_TERMINAL = frozenset(t.encode() for t in TERMINAL_TYPES)
PRIME_BATCH = 512


class StreamEntry(Protocol):
    """What a view needs of a stream entry (`api.hub.Entry` has it)."""

    @property
    def sid(self) -> StreamId: ...
    @property
    def raw_id(self) -> bytes: ...
    @property
    def kind(self) -> bytes: ...
    @property
    def job(self) -> bytes: ...
    @property
    def data(self) -> bytes: ...


class View:
    def __init__(self, fmt: Format, redis: Redis, keys: Keys, session: SessionRef) -> None:
        self.format = fmt
        self.redis = redis
        self.keys = keys
        self.session = session
        self.jobs: dict[bytes, Translator] = {}

    async def prepare(self, batch: Iterable[StreamEntry]) -> None:
        """Prime the translator of every job this batch meets after its `job.queued`."""
        queued: set[bytes] = set()  # jobs that start in this very batch
        for entry in batch:
            if entry.job in self.jobs or entry.job in queued:
                continue
            if entry.kind == _QUEUED:
                queued.add(entry.job)
            else:
                await self.prime(entry.job, entry.sid)

    async def prime(self, job: bytes, upto: StreamId) -> None:
        """Feed the job's events before `upto` to a new translator, dropping their frames."""
        translator = self.format.factory()
        marks = await job_marks(self.redis, self.keys, self.session, job.decode())
        if marks.queued_id is not None:
            await self._replay(translator, job, marks.queued_id, upto)
        self.jobs[job] = translator  # only once complete: a Redis error primes again

    async def _replay(
        self, translator: Translator, job: bytes, queued_id: bytes, upto: StreamId
    ) -> None:
        key = self.keys.stream(self.session)
        low, high = queued_id, f"({format_stream_id(upto)}"
        while True:
            rows = await self.redis.xrange(key, low, high, count=PRIME_BATCH)
            for _, fields in rows:
                event = decode_event(fields.get(b"t", b""), fields.get(b"d", b""))
                if fields.get(b"j") == job and event is not None:
                    translator.feed(event)
            if len(rows) < PRIME_BATCH:
                return
            low = b"(" + rows[-1][0]

    def render(self, entry: StreamEntry) -> bytes:
        """The entry's frames (b"" when the format shows nothing for it)."""
        translator = self.jobs.get(entry.job)
        if translator is None:
            translator = self.jobs[entry.job] = self.format.factory()
        if entry.kind in _TERMINAL:
            del self.jobs[entry.job]
        event = decode_event(entry.kind, entry.data)
        frames = translator.feed(event) if event is not None else []
        if not frames:
            return b""
        *head, last = frames
        out = b"".join(encode(f.data, event=f.event) for f in head)
        return out + encode(last.data, id=entry.raw_id, event=last.event)
