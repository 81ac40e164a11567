"""The per-process fan-out hub: many SSE clients, few Redis connections.

Design (notify-then-range):
- Every append announces its new entries with the session's tag and the id the stream
  ended at before them (a notice, `shared/streams.py`): on a standalone Redis all the
  notices of one script call (a worker's round) in one message on the deployment's one
  notices channel; on a Redis Cluster each on its session's channel. The hub holds ONE
  pub/sub connection for the whole process (one per shard on a cluster,
  `api/subscriber.py`), subscribed to the notices channel (on a cluster: to the channels
  of the sessions its clients follow), and keeps the notices of the sessions it follows.
- Each followed session is a `Topic` with a bounded ring buffer of its newest
  entries. A notification whose "before" id is where the buffer ends is appended as it
  is (no Redis read); otherwise (a missed notification, start-up, a recreated stream)
  the hub reads what is new with one read (`READ_LUA`), however many clients follow
  the session. Reads go through the client's auto-pipeline (`shared/autopipe.py`): the
  reads of one event-loop turn (a burst of clients joining or resuming) share one write
  and one pooled connection. Notices that come while such a read is out
  are held and applied after it (those it already read are dropped), so a busy session
  does not read again at every token while its read waits for the pool.
- A client keeps only a cursor. It reads from the buffer when the buffer covers its
  cursor, and from Redis (`XRANGE`) otherwise: a new client catching up, or a slow
  one that fell behind the buffer. Clients that need the same cursor at once share one
  read, which is kept in front of the buffer when it reaches it (`Hub.read_behind`): a
  crowd joining a session from its start reads its history from Redis once. Nothing
  queues per client, so a slow client costs no memory and loses nothing; the socket's
  own back-pressure paces it.
- The buffer starts at the stream's last id read once the subscription is confirmed, so
  every entry is either in Redis below the buffer or announced after it (a topic made
  before that is read again when it is confirmed, as after every reconnect).

Direct writes: a follower of the default format (every entry, Spool's own frames) whose
response can write to its connection itself (`api.transport_writer`) and that has sent
everything up to the topic's newest entry is *attached* (`Follower.attach`): the topic
then writes each new run of entries to it as it arrives, the frames joined once for all
attached followers, and its task sleeps. A follower leaves this path (its task wakes and
reads on from its cursor, as any other) when its socket is full (a slow reader: the send
timeout applies again), when a run is larger than `DIRECT_MAX_BYTES`, when the session
ends, or when the hub closes. Its pings, every `ping_s`, are a timer callback.

Bounds (contract §4): a batch handed to a client holds at most `MAX_BATCH_BYTES` of
data (and at least one entry). XRANGE has no byte limit, so reads go through a small
script that ranges a few entries at a time inside Redis and stops at the budget: a
client costs the API about one batch however large the events. The buffer holds at
most `buffer_size` entries and `MAX_BUFFER_BYTES`.

Ownership: the hub ends a topic's followers (`SessionGone`) when the session is deleted
(a notice on its channel) or when its stream is found to be another incarnation (the
marks' `_born` id changed: deleted or expired, then created again), so an open response
never carries what is written later under the same id.
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from typing import NamedTuple, Protocol

import msgspec
from redis.asyncio import Redis

from spool.api import metrics, sse_encoder
from spool.api.subscriber import subscriber_for
from spool.shared import autopipe
from spool.shared.cluster import ClusterRedis
from spool.shared.ids import ZERO, StreamId, before, format_stream_id, redis_stream_id
from spool.shared.keys import NOTIFY, Keys, SessionRef
from spool.shared.scripts import scripts_of
from spool.shared.singleflight import SingleFlight
from spool.shared.streams import DELETED, Notice, decode_notices
from spool_client.events import TERMINAL_TYPES

log = logging.getLogger(__name__)

Fields = dict[bytes, bytes]

MAX_BATCH_BYTES = 256 << 10  # data handed to one client at a time (at least one entry)
MAX_BUFFER_BYTES = 1 << 20  # a topic's buffer of newest entries
MAX_HELD = 1024  # notices a topic holds while it syncs (more: the sync reads them)
DIRECT_MAX_BYTES = 64 << 10  # a larger run goes to attached followers through their tasks
PING = sse_encoder.comment(b"ping")
TERMINAL = frozenset(t.encode() for t in TERMINAL_TYPES)  # entry types that end a job

# Entries after ARGV[1] (exclusive), at most ARGV[2] of them and about ARGV[3] bytes of
# data (at least one), ranged 8 at a time at first (more while they are small) so Redis
# never copies many large entries either; returned flat: id, type, job, data, id, ...
READ_LUA = """
local start, count, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out, n, size, step = {}, 0, 0, 8
while n < count and size < budget do
  local rows = redis.call('XRANGE', KEYS[1], '(' .. start, '+', 'COUNT', math.min(step, count - n))
  if #rows == 0 then break end
  for _, row in ipairs(rows) do
    local f = row[2]  -- the append script writes t, j, d in this order
    local d = f[6] or ''
    if n > 0 and size + #d > budget then return out end
    out[#out + 1] = row[1]
    out[#out + 1] = f[2] or ''
    out[#out + 1] = f[4] or ''
    out[#out + 1] = d
    n, size, start = n + 1, size + #d, row[1]
  end
  if size * 4 < budget then step = math.min(step * 4, 64) end  -- small entries: more at once
end
return out
"""


class SessionGone(Exception):
    """The followed session was deleted (or expired and was created anew)."""


class Entry(msgspec.Struct, gc=False, frozen=True):
    """One stream entry as followers need it: its id, job and type, and its SSE frame,
    built once when the entry reaches the hub however many clients it is sent to
    (`entry`, `notice_entry`). Never tracked by the garbage collector (`gc=False`: it
    holds only bytes and ints): the buffers hold hundreds of thousands of them, which
    every full collection would otherwise traverse."""

    sid: StreamId
    kind: bytes
    job: bytes
    frame: bytes

    @property
    def raw_id(self) -> bytes:
        """The entry's id as the stream wrote it, sliced from the frame's `id:` line."""
        return self.frame[4 : self.frame.index(b"\n")]

    @property
    def data(self) -> bytes:
        """The event's JSON, sliced from the frame (kept once: the frame holds it)."""
        return self.frame[self.frame.index(b"\ndata: ") + 7 : -2]


def entry(raw_id: bytes, kind: bytes, job: bytes, data: bytes) -> Entry:
    return Entry(redis_stream_id(raw_id), kind, job, sse_encoder.entry(raw_id, kind, data))


def notice_entry(raw_id: str, kind: str, job: bytes, data: str) -> Entry:
    """`entry` of a notice's (decoded) strings: the frame formatted and encoded at once
    when the data is one line (an event's JSON is), as `sse_encoder.entry` would."""
    if "\n" in data or "\r" in data:
        return entry(raw_id.encode(), kind.encode(), job, data.encode())
    ms, _, seq = raw_id.partition("-")
    frame = f"id: {raw_id}\nevent: {kind}\ndata: {data}\n\n".encode()
    return Entry((int(ms), int(seq)), kind.encode(), job, frame)


def _take(entries: list[Entry], limit: int, max_bytes: int) -> list[Entry]:
    """The first entries within `limit` and `max_bytes` (always at least one)."""
    total = 0
    for i, entry in enumerate(entries[:limit]):
        total += len(entry.frame)
        if total > max_bytes and i > 0:
            return entries[:i]
    return entries[:limit]


def _entries(rows: list[tuple[bytes, Fields]]) -> list[Entry]:
    return [entry(raw, f.get(b"t", b""), f.get(b"j", b""), f.get(b"d", b"")) for raw, f in rows]


class Start(NamedTuple):
    """Where a new topic may begin without reading Redis (`Hub.follow`)."""

    born: bytes  # the stream's incarnation (its marks' `_born`)
    newest: Entry  # its newest entry


class DirectWriter(Protocol):
    """A response that can take frames at any moment (`api.transport_writer`)."""

    @property
    def paused(self) -> bool: ...

    def offer(self, chunk: bytes) -> bool: ...


class Attached:
    """A caught-up follower the topic writes to itself; `cursor`: the last id it was sent."""

    __slots__ = ("cursor", "only", "pinger", "wake", "writer")

    def __init__(self, writer: DirectWriter, cursor: StreamId, only: bytes | None) -> None:
        self.writer = writer
        self.cursor = cursor
        self.only = only  # the one job it follows (None: every entry)
        self.wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pinger: asyncio.TimerHandle | None = None

    def ping(self, topic: "Topic", ping_s: float) -> None:
        """A timer's: write a ping and schedule the next, or leave the direct path (the task
        path times a stalled reader out). A method, not a closure in `Follower.attach`: a
        closure that schedules itself is a reference cycle (and it held the topic's buffer
        and the connection until the collector's next full pass); this one ends with
        `Topic.detach`, which cancels the timer."""
        if self not in topic.attached or not self.writer.offer(PING):
            topic.detach(self)
            return
        self.pinger = asyncio.get_running_loop().call_later(ping_s, self.ping, topic, ping_s)


class Topic:
    """One followed session: its buffer of newest entries and the clients waiting on it."""

    def __init__(self, session: SessionRef, keys: Keys, buffer_size: int) -> None:
        self.session = session
        self.key = keys.stream(session)
        self.marks = keys.marks(session)
        self.tag = keys.tag(session)
        self.channel = keys.notify(session).encode()  # a cluster's (see `api/subscriber.py`)
        self.base: StreamId | None = None  # entries after `base` are buffered; None until synced
        self.last: StreamId = ZERO
        self.last_noticed: str | None = None  # `last` as a notice wrote it (see `Hub._apply`)
        self.buffer: deque[Entry] = deque()
        self.buffer_size = buffer_size
        self.buffered_bytes = 0
        self.born: bytes | None = None  # the stream's first id: which incarnation we follow
        self.gone = False
        self.followers = 0
        self.dirty = False
        self.syncing: asyncio.Task[None] | None = None
        self.held: list[Notice] = []  # notices that came while a sync ran (`Hub._apply`)
        self._changed: asyncio.Event | None = None  # made for the first waiter (`changed`)
        self.attached: dict[Attached, None] = {}  # insertion-ordered set

    def start_at(self, start: Start) -> None:
        """Synced without a read: `start.newest` is the stream's newest entry and
        `start.born` its incarnation, as the script that appended that entry saw them."""
        self.born = start.born
        self.base, self.last = before(start.newest.sid), start.newest.sid
        self.buffer.append(start.newest)
        self.buffered_bytes += len(start.newest.frame)

    def covers(self, cursor: StreamId) -> bool:
        return self.base is not None and cursor >= self.base

    def keep_behind(self, entries: list[Entry], cursor: StreamId) -> None:
        """Entries read from Redis after `cursor` (older than the buffer), kept in front of
        it when they reach it and fit its bounds: the buffer then covers `cursor`. They
        reach it when they hold its oldest entry (or, while it is empty, the entry at
        `base`), which also proves they are the same stream (a stream created again has
        other ids)."""
        if self.base is None or self.dirty or self.gone or cursor >= self.base or not entries:
            return
        first = self.buffer[0].sid if self.buffer else self.base
        reach = len(entries) - 1
        while reach >= 0 and entries[reach].sid > first:
            reach -= 1
        if reach < 0 or entries[reach].sid != first:
            return  # they end before the buffer, or are not the stream it holds
        older = entries[:reach] if self.buffer else entries[: reach + 1]
        size = sum(len(e.frame) for e in older)
        if (
            len(self.buffer) + len(older) > self.buffer_size
            or self.buffered_bytes + size > MAX_BUFFER_BYTES
        ):
            return
        self.buffer.extendleft(reversed(older))
        self.buffered_bytes += size
        self.base = cursor

    def after(self, cursor: StreamId, limit: int) -> list[Entry]:
        """Buffered entries with ids greater than `cursor` (oldest first, at most `limit`
        and about `MAX_BATCH_BYTES`)."""
        found: list[Entry] = []
        for entry in reversed(self.buffer):
            if entry.sid <= cursor:
                break
            found.append(entry)
        found.reverse()
        return _take(found, limit, MAX_BATCH_BYTES)

    def extend(self, entries: list[Entry], job: bytes | None = None) -> int:
        """Buffer new entries (hand each run to the attached followers); `job`: theirs, when
        they are known to be one job's (a notice's). Returns how many events were written
        to attached followers: the caller counts them once per message."""
        if not entries:
            return 0
        buffer = self.buffer
        for each in entries:
            buffer.append(each)
            self.buffered_bytes += len(each.frame)
        if len(buffer) > self.buffer_size or self.buffered_bytes > MAX_BUFFER_BYTES:
            self._trim()
        self.last, self.last_noticed = entries[-1].sid, None
        written = self._write_attached(entries, job) if self.attached else 0
        self.notify()
        return written

    def _trim(self) -> None:
        """Drop the oldest entries beyond `buffer_size` and `MAX_BUFFER_BYTES` (keep one)."""
        buffer = self.buffer
        while len(buffer) > self.buffer_size or (
            self.buffered_bytes > MAX_BUFFER_BYTES and len(buffer) > 1
        ):
            dropped = buffer.popleft()
            self.buffered_bytes -= len(dropped.frame)
            self.base = dropped.sid

    def _write_attached(self, entries: list[Entry], job: bytes | None) -> int:
        """The new entries to every attached follower: joined once, one write each; returns
        the events written."""
        run = entries[0].frame if len(entries) == 1 else b"".join(e.frame for e in entries)
        if len(run) > DIRECT_MAX_BYTES:
            self.detach_all()
            return 0
        last, written = self.last, 0
        if job is None and all(e.job == entries[0].job for e in entries):
            job = entries[0].job
        ends_job: bool | None = None  # found out when a follower of one job needs it
        for attached in list(self.attached):
            if attached.only is not None:
                if attached.only != job:
                    if job is None:  # several jobs' entries: its task picks its job's out
                        self.detach(attached)
                    else:  # another job's run: nothing for this follower
                        attached.cursor = last
                    continue
                if ends_job is None:
                    ends_job = (
                        entries[0].kind in TERMINAL
                        if len(entries) == 1
                        else any(e.kind in TERMINAL for e in entries)
                    )
                if ends_job:
                    self.detach(attached)  # its task writes the end and ends the response
                    continue
            if attached.writer.offer(run):
                attached.cursor = last
                written += 1
            else:  # a slow reader, or gone: its task reads on from its cursor (and times out)
                self.detach(attached)
        return written * len(entries)

    def detach(self, attached: Attached) -> None:
        """Back to the task path: the follower's task wakes and reads from its cursor."""
        self.attached.pop(attached, None)
        if attached.pinger is not None:
            attached.pinger.cancel()
            attached.pinger = None
        if not attached.wake.done():
            attached.wake.set_result(None)

    def detach_all(self) -> None:
        for attached in list(self.attached):
            self.detach(attached)

    def end(self) -> None:
        """The session is gone: every follower ends."""
        self.gone = True
        self.buffer.clear()
        self.buffered_bytes = 0
        self.detach_all()
        self.notify()

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next change (new entries, the end); one event for all its waiters."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def notify(self) -> None:
        if self._changed is not None:  # somebody waits
            self._changed.set()
            self._changed = None


class Hub:
    def __init__(
        self, redis: Redis, keys: Keys, *, buffer_size: int = 512, batch: int = 256
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.buffer_size = buffer_size
        self.batch = batch
        self.topics: dict[SessionRef, Topic] = {}
        self._by_tag: dict[str, Topic] = {}
        self._notices = keys.notices.encode()
        self._subscriber = subscriber_for(redis, keys.notices, self._on_message)
        self._read_sha = redis.register_script(READ_LUA).sha
        self._scripts = scripts_of(redis)
        # reads join the loop turn's other commands in one round trip (`shared/autopipe.py`):
        # a burst of clients joining (or resuming) reads without a pool checkout each; a
        # cluster client routes each read to its shard itself
        self._pipe = None if isinstance(redis, ClusterRedis) else autopipe.shared(redis)
        self._behind = SingleFlight(self._read_and_keep)  # see `read_behind`
        self._commands: deque[tuple[str, bytes]] = deque()
        self._commands_waiting = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.closing = False

    def shutdown(self) -> None:
        """End every follower's stream now: the process stops, clients reconnect elsewhere."""
        self.closing = True
        for topic in self.topics.values():
            topic.detach_all()
            topic.notify()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._subscriber.run(), name="hub-listener"),
            asyncio.create_task(self._command(), name="hub-commands"),
        ]

    async def aclose(self) -> None:
        tasks = self._tasks + [t.syncing for t in self.topics.values() if t.syncing is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._subscriber.aclose()
        if self._pipe is not None:
            await self._pipe.aclose()  # reads already written get their replies

    @contextlib.asynccontextmanager
    async def follow(
        self, session: SessionRef, start: Start | None = None
    ) -> AsyncIterator["Follower"]:
        """A follower of the session. `start`: the stream as a script that appended to it
        just saw it (a submission's `job.queued`): a topic made now begins there instead
        of reading Redis; a notice it missed meanwhile shows as a gap, and is read."""
        topic = self.topics.get(session)
        if topic is None:
            topic = self.topics[session] = Topic(session, self.keys, self.buffer_size)
            self._by_tag[topic.tag] = topic
            if start is not None:
                topic.start_at(start)
            if self._subscriber.per_session:  # read once the subscription is confirmed
                self._queue_command("subscribe", topic.channel)
            elif start is None:  # the notices channel is subscribed: read now
                self._mark(topic)
        topic.followers += 1
        try:
            yield Follower(self, topic)
        finally:
            topic.followers -= 1
            if topic.followers == 0:
                self._drop(topic)

    async def read(self, topic: Topic, cursor: StreamId) -> list[Entry]:
        """Entries after `cursor` from Redis: at most `batch`, about `MAX_BATCH_BYTES`."""
        args = (format_stream_id(cursor), self.batch, MAX_BATCH_BYTES)
        command = ("EVALSHA", self._read_sha, 1, topic.key, *args)

        # not a script object (`shared/scripts.py`); quoted: made per read, not evaluated
        def evalsha() -> "Awaitable[list[bytes]]":
            if self._pipe is not None:
                return self._pipe.call(*command)
            return self.redis.execute_command(*command)  # type: ignore[no-untyped-call]

        flat = await self._scripts.run(READ_LUA, self._read_sha, evalsha)
        return [entry(*flat[i : i + 4]) for i in range(0, len(flat), 4)]

    async def read_behind(self, topic: Topic, cursor: StreamId) -> list[Entry]:
        """`read` of what the topic's buffer does not cover: once for all the followers
        that need it at once (a crowd joining a session from its start, or resuming from
        one id after a deploy), then kept in front of the buffer when it reaches it
        (`Topic.keep_behind`), so that the followers who come next read memory."""
        return await self._behind((topic, cursor))

    async def _read_and_keep(self, at: tuple[Topic, StreamId]) -> list[Entry]:
        topic, cursor = at
        entries = await self.read(topic, cursor)
        topic.keep_behind(entries, cursor)
        return entries

    # -- topic upkeep ---------------------------------------------------------------

    def _drop(self, topic: Topic) -> None:
        """Forget a topic nobody follows (synchronous: safe in a cancelled client's finally)."""
        del self.topics[topic.session]
        del self._by_tag[topic.tag]
        if topic.syncing is not None:
            topic.syncing.cancel()
            topic.syncing = None  # a cancelled task keeps its traceback, which holds the topic
        topic.detach_all()
        if self._subscriber.per_session:
            self._queue_command("unsubscribe", topic.channel)

    def _queue_command(self, verb: str, channel: bytes) -> None:
        self._commands.append((verb, channel))
        self._commands_waiting.set()

    async def _command(self) -> None:
        """Send (un)subscribes in the order clients came and went, batched."""
        while True:
            if not self._commands:
                self._commands_waiting.clear()
                await self._commands_waiting.wait()
                continue
            verb, channel = self._commands.popleft()
            batch = [channel]
            while self._commands and self._commands[0][0] == verb:
                batch.append(self._commands.popleft()[1])
            if verb == "subscribe":  # only those still followed
                batch = [c for c in batch if self._topic_of(c) is not None]
            else:
                batch = [c for c in batch if self._topic_of(c) is None]
            if not batch:
                continue
            try:
                if verb == "subscribe":
                    await self._subscriber.subscribe(batch)
                else:
                    await self._subscriber.unsubscribe(batch)
            except Exception as exc:  # the listener reconnects, and re-subscribes
                log.warning("hub %s failed: %s", verb, exc)

    def _mark(self, topic: Topic) -> None:
        topic.dirty = True
        if topic.syncing is None or topic.syncing.done():
            topic.syncing = asyncio.create_task(self._sync(topic))

    async def _sync(self, topic: Topic) -> None:
        """Bring the topic's buffer up to Redis: on its first run the stream's tail (one
        round trip with the marks' `_born`), later what is new after the buffer. The
        notices that come meanwhile are held (`_apply`) and applied after each step, so a
        busy session's sync ends after one step instead of starting over at every notice
        (its commands wait for the pool as long as the process is busy: a sync that read
        again for every notice would never catch up, and its reads would crowd out every
        other command)."""
        while topic.dirty and not topic.gone:
            topic.dirty = False
            try:
                first = topic.base is None
                born, tail = await (self._born_and_tail(topic) if first else self._born(topic))
                if topic.born is None:
                    topic.born = born
                elif born != topic.born:  # deleted (or expired) and created again since
                    topic.end()
                    return
                if first:
                    topic.base = topic.last = _entries(tail)[0].sid if tail else ZERO
                    topic.last_noticed = None
                    topic.notify()
                else:
                    while entries := await self.read(topic, topic.last):
                        _delivered(topic.extend(entries))
            except Exception as exc:  # Redis away or erring: retry; followers can read Redis
                log.warning("hub sync of %s failed: %s", topic.session, exc)
                topic.dirty = True
                await asyncio.sleep(0.2)
                continue
            self._release_held(topic)

    def _release_held(self, topic: Topic) -> None:
        """Apply the notices held during a sync step, in order; at the first that does not
        follow (a gap), read again."""
        held, topic.held = topic.held, []
        delivered = 0
        for notice in held:
            written = self._chain(topic, notice)
            if written is None:
                topic.dirty = True
                break
            delivered += written
        _delivered(delivered)

    async def _born(self, topic: Topic) -> tuple[bytes | None, None]:
        """The stream's first id as its marks recorded it: which incarnation it is."""
        born: bytes | None = await self.redis.hget(topic.marks, "_born")  # type: ignore[misc]
        return born, None

    async def _born_and_tail(self, topic: Topic) -> tuple[bytes | None, list[tuple[bytes, Fields]]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(topic.marks, "_born")
            pipe.xrevrange(topic.key, "+", "-", count=1)
            born, tail = await pipe.execute()
        return born, tail

    def _topic_of(self, channel: bytes) -> Topic | None:
        """The topic whose session's own channel (a cluster's) this is."""
        return self._by_tag.get(channel.decode().removesuffix(NOTIFY))

    def _on_message(self, kind: str, channel: bytes, data: bytes | None) -> None:
        """A message of notices, or a confirmed (re)subscription ("subscribe", after which
        the sessions it announces are read again: notices may have been missed meanwhile)."""
        if kind == "subscribe":
            if channel == self._notices:
                for each in self.topics.values():
                    self._mark(each)
            elif (own := self._topic_of(channel)) is not None:
                self._mark(own)
            return
        if data is None:
            return
        try:
            notices = decode_notices(data)
        except (msgspec.DecodeError, TypeError):  # not ours: read what the channel announces
            log.warning("hub: a message on %r is not a list of notices", channel)
            self._on_message("subscribe", channel, None)
            return
        by_tag, delivered = self._by_tag, 0
        for notice in notices:
            topic = by_tag.get(notice[0]) if notice else None
            if topic is None:  # a session nobody here follows
                continue
            if len(notice) == 2 and notice[1] == DELETED:
                topic.end()
                continue
            written = self._apply(topic, notice)
            if written is None:
                self._mark(topic)
            else:
                delivered += written
        _delivered(delivered)

    @staticmethod
    def _apply(topic: Topic, notice: Notice) -> int | None:
        """Append a notice's entries when they directly follow the buffer (the events
        written to attached followers); hold it while a sync runs (applied after it);
        else None."""
        if topic.syncing is not None and not topic.syncing.done():
            if len(topic.held) >= MAX_HELD:
                return None
            topic.held.append(notice)
            return 0
        if topic.base is None or topic.dirty:
            return None
        return Hub._chain(topic, notice)

    @staticmethod
    def _chain(topic: Topic, notice: Notice) -> int | None:
        """`_apply` on a synced topic: 0 for entries the buffer already has (a sync read
        them before their notice came), None for a gap (a missed notice, a recreated
        stream: read Redis)."""
        if len(notice) < 6 or len(notice) % 3 != 0 or topic.born is None:
            return None
        prev = notice[1]  # the id before the entries, as text: compared as such when it can
        if prev != topic.last_noticed and redis_stream_id(prev) != topic.last:
            # one script appended the entries and announced them: a read that came after
            # it has them all, one that came before has none of them
            return 0 if redis_stream_id(notice[-3]) <= topic.last else None
        job = notice[2].encode()
        if len(notice) == 6:  # one entry (a token): no list comprehension
            written = topic.extend([notice_entry(notice[3], notice[4], job, notice[5])], job)
        else:
            entries = [
                notice_entry(notice[i], notice[i + 1], job, notice[i + 2])
                for i in range(3, len(notice), 3)
            ]
            written = topic.extend(entries, job)
        topic.last_noticed = notice[-3]  # the next notice's `prev`, unless something else came
        return written


def _delivered(events: int) -> None:
    """Count events written to responses: once per message or read, not per follower."""
    if events:
        metrics.EVENTS_DELIVERED.inc(events)


class Follower:
    """One client's view of a topic: hands out entries after a cursor, in order, once."""

    def __init__(self, hub: Hub, topic: Topic) -> None:
        self.hub = hub
        self.topic = topic

    async def next_batch(self, cursor: StreamId, wait_s: float) -> list[Entry] | None:
        """Entries after `cursor`; `[]` if none came within `wait_s`; None if the hub closes.
        Raises `SessionGone` when the session was deleted (or is another incarnation)."""
        topic, limit = self.topic, self.hub.batch
        while not self.hub.closing:
            if topic.gone:
                raise SessionGone(topic.session.session_id)
            changed = topic.changed
            if topic.covers(cursor):
                batch = topic.after(cursor, limit)
            else:
                batch = await self.hub.read_behind(topic, cursor) or topic.after(cursor, limit)
            if topic.gone:  # deleted while we read: what we read may be another incarnation's
                raise SessionGone(topic.session.session_id)
            if batch:
                return batch
            try:
                async with asyncio.timeout(wait_s):
                    await changed.wait()
            except TimeoutError:
                return []
        return None

    def caught_up(self, cursor: StreamId) -> bool:
        """The follower has everything up to the topic's newest entry (it may attach)."""
        topic = self.topic
        return (
            topic.base is not None
            and cursor == topic.last
            and not topic.gone
            and not self.hub.closing
        )

    async def attach(
        self, writer: DirectWriter, cursor: StreamId, ping_s: float, only: bytes | None = None
    ) -> StreamId:
        """Let the topic write new entries (of job `only`, if given) to `writer` itself
        (see the module docstring) until it detaches this follower; returns the cursor
        to read on from. The caller checks `caught_up(cursor)` first, after its last
        write; pings are sent meanwhile. A run that ends job `only` is left to the task."""
        topic = self.topic
        attached = Attached(writer, cursor, only)
        topic.attached[attached] = None
        attached.pinger = asyncio.get_running_loop().call_later(
            ping_s, attached.ping, topic, ping_s
        )
        try:
            await attached.wake
        finally:
            topic.detach(attached)
        return attached.cursor
