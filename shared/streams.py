"""Appending to a session's Redis Stream, atomically with the job's marks.

One Lua function per batch (`APPEND_FUNCTION`; a worker sends every job's batch of a
round in one call, `APPEND_MANY_LUA`): `XADD` every event not yet written (fields `t` type, `j` job
id, `d` the exact JSON the client receives; by `seq`, so a resent batch is a no-op),
record the job's queued/terminal ids and last seq, refuse writes after the job's
terminal event, from an attempt older than the newest one, for a job this session never
queued (its session was deleted or expired: a late worker cannot recreate the stream),
or while the session's tombstone exists. The marks count the session's live jobs
(`job.queued` without a terminal event): while any is live the stream and marks have no
TTL; when the last one ends they get `SPOOL_RETENTION_S`.

Notices: every append's new entries are announced together with the session's tag and the
id the stream ended at before them, so a fan-out that holds everything up to that id
appends them without reading the stream. On a standalone Redis one script call publishes
ONE message with the notices of all its appends on the deployment's notices channel
(`Keys.notices`): a worker's round of appends for 1,000 sessions is one `PUBLISH` and one
message for each API to read, not 1,000 of each. Every API reads every notice and keeps
those of the sessions its clients follow (a dict lookup per notice for the others). On a
Redis Cluster a channel must live in one slot, so each append `SPUBLISH`es its notice on
its own session's channel (`Keys.notify`), on the shard that holds the session.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

from spool.shared.cluster import ClusterRedis
from spool.shared.connections import awaited
from spool.shared.errors import SpoolError
from spool.shared.keys import EVENTS, MARKS, NOTIFY, TOMBSTONE, Keys, SessionRef
from spool.shared.scripts import scripts_of
from spool_client.events import TERMINAL_TYPES

_TERMINAL = " or ".join(f"t == '{t}'" for t in sorted(TERMINAL_TYPES))

# An XADD trims (`MAXLEN ~`) only when the job's seq crosses a multiple of this: a stream
# ends at most this many entries per job writing to it over the cap (above the whole
# radix-tree node approximate trimming leaves anyway); an XADD's three extra arguments
# on every entry cost Redis ~0.35 µs per event.
TRIM_EVERY = 32

# append(stream, marks, tomb, job, attempt, ttl, maxlen, tag, args, from, to): the events
# in args[from..to] (triples: type, seq, data); returns its notice ({tag, the last id
# before, job, then per new entry its id, type, data}: `ids_of` lists the ids), false for
# a resent batch, or a refusal as a string; the notice also goes to `notes`, which the
# script publishes once at its end (`publish_notes(channel)`). `tomb` may be nil: the
# key is then built from `tag`, only when looked up (below). Per
# append in the common case (a live session, no job starting or ending): HMGET, the XADDs
# and one HSET. The tombstone is looked up (EXISTS) only for a job without a queued mark:
# a session's deletion sets its tombstone and deletes its marks at once
# (`DELETE_SESSION_LUA`), and only this script, after that lookup, writes a queued mark, so
# a job that has one is in a session no tombstone covers (one call less per append: ~0.6 µs
# of Redis CPU per event). The live count, `_born` and the attempt travel in that one
# HSET; the TTLs change only when the live count reaches 0 (EXPIRE, again on every append
# while idle) or leaves it (PERSIST): while a job is live the keys carry no TTL, which
# only this script changes.
APPEND_FUNCTION_TEMPLATE = f"""
local notes = {{}}
local function append(stream, marks, tomb, job, attempt, ttl, maxlen, tag, args, from, to)
  local fs, ft, fa, fq = job .. ':s', job .. ':t', job .. ':a', job .. ':q'
  local m = redis.call('HMGET', marks, fs, ft, fa, '_last', fq, '_live')
  -- the job's queued mark proves there is no tombstone (`DELETE_SESSION_LUA`)
  if not m[5] and redis.call('EXISTS', tomb or tag .. '{TOMBSTONE}') == 1 then
    return 'SPOOL_CLOSED the session was deleted'
  end
  if attempt < 0 and m[3] then
    return 'SPOOL_STARTED a worker runs the job'
  end
  local last = tonumber(m[1] or '-1')
  if tonumber(args[to - 1]) <= last then
    return false
  end
  if m[2] then
    return 'SPOOL_CLOSED job already ended'
  end
  if args[from] ~= 'job.queued' and not m[5] then
    return 'SPOOL_CLOSED the job is not in this session (deleted or expired)'
  end
  local set = {{}}  -- the marks to write besides the job's seq and `_last`
  if attempt > 0 then
    local owner = tonumber(m[3] or '0')
    if owner > attempt then
      return 'SPOOL_CLOSED attempt ' .. owner .. ' owns the job'
    end
    if owner ~= attempt then set[#set + 1] = fa; set[#set + 1] = attempt end
  end
  local was = tonumber(m[6] or '0')
  local live = was
  local note = {{tag, m[4] or '0-0', job}}  -- and per entry its id, type, data
  local id
  for i = from, to, 3 do
    local t, seq, d = args[i], tonumber(args[i + 1]), args[i + 2]
    if seq > last then
      if maxlen ~= '0' and seq - seq % {TRIM_EVERY} > last then
        id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 't', t, 'j', job, 'd', d)
      else
        id = redis.call('XADD', stream, '*', 't', t, 'j', job, 'd', d)
      end
      note[#note + 1] = id
      note[#note + 1] = t
      note[#note + 1] = d
      last = seq
      if t == 'job.queued' then
        set[#set + 1] = fq; set[#set + 1] = id
        live = live + 1
      elseif {_TERMINAL} then
        set[#set + 1] = ft; set[#set + 1] = id
        live = live - 1
      end
    end
  end
  if live ~= was then set[#set + 1] = '_live'; set[#set + 1] = live end
  -- the marks' first write: `_born` comes with `_last` (no other write removes a field)
  if not m[4] then set[#set + 1] = '_born'; set[#set + 1] = note[4] end
  if #set == 0 then
    redis.call('HSET', marks, fs, last, '_last', id)
  else
    redis.call('HSET', marks, fs, last, '_last', id, unpack(set))
  end
  if live <= 0 then
    redis.call('EXPIRE', stream, ttl)
    redis.call('EXPIRE', marks, ttl)
  elseif was <= 0 then
    redis.call('PERSIST', stream)
    redis.call('PERSIST', marks)
  end
  notes[#notes + 1] = note
  return note
end
-- the new ids in an append's notice
local function ids_of(note)
  local ids = {{}}
  for i = 4, #note, 3 do ids[#ids + 1] = note[i] end
  return ids
end
@PUBLISH_NOTES@
"""

# one append: KEYS stream, marks, tombstone; ARGV job, attempt, ttl, maxlen, the notices
# channel, the session's tag, then triples
APPEND_LUA_TEMPLATE = (
    APPEND_FUNCTION_TEMPLATE
    + """
local r = append(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4],
  ARGV[6], ARGV, 7, #ARGV)
if type(r) == 'string' then return redis.error_reply(r) end
publish_notes(ARGV[5])
return r and ids_of(r) or {}
"""
)

# many appends in one call: ARGV ttl, maxlen, ONE MessagePack array, the notices channel.
# The array holds per append its session's tag (the script adds the key suffixes), job,
# attempt, n, then n triples (one argument instead of thousands: the client packs one
# value). KEYS declares the first append's keys: on a cluster they route the call to the
# shard, whose other slots the flag below lets the script touch; standalone Redis checks
# no declaration, and declaring every session's three keys cost both sides an argument
# each per append. Returns per append the number of entries it wrote, or its refusal.
APPEND_MANY_LUA_TEMPLATE = (
    APPEND_FUNCTION_TEMPLATE
    + f"""
local ttl, maxlen, out, a = ARGV[1], ARGV[2], {{}}, 1
local args = cmsgpack.unpack(ARGV[3])
while a <= #args do
  local tag, job, attempt, n = args[a], args[a + 1], args[a + 2], args[a + 3]
  local r = append(tag .. '{EVENTS}', tag .. '{MARKS}', nil, job, attempt, ttl, maxlen, tag,
    args, a + 4, a + 3 + 3 * n)
  out[#out + 1] = type(r) == 'string' and r or r and (#r - 3) / 3 or 0
  a = a + 4 + 3 * n
end
publish_notes(ARGV[4])
return out
"""
)

# Standalone: the call's notices as ONE message on the deployment's notices channel.
PUBLISH_NOTES = """
local function publish_notes(channel)
  if #notes > 0 then redis.call('PUBLISH', channel, cmsgpack.pack(notes)) end
end
"""
# On a cluster: each notice on its session's channel with SPUBLISH, which stays on the
# shard that holds the session's slot (the channel shares the session's hash tag) instead
# of going to every node; a message is a list of notices there too (of one).
PUBLISH_NOTES_SHARDED = f"""
local function publish_notes(channel)
  for _, note in ipairs(notes) do
    redis.call('SPUBLISH', note[1] .. '{NOTIFY}', cmsgpack.pack({{note}}))
  end
end
"""


def with_publish(template: str, *, sharded: bool) -> str:
    """A script template with its `publish_notes` for a standalone Redis or a cluster."""
    return template.replace("@PUBLISH_NOTES@", PUBLISH_NOTES_SHARDED if sharded else PUBLISH_NOTES)


APPEND_LUA = with_publish(APPEND_LUA_TEMPLATE, sharded=False)
APPEND_LUA_SHARDED = with_publish(APPEND_LUA_TEMPLATE, sharded=True)
APPEND_MANY_LUA = with_publish(APPEND_MANY_LUA_TEMPLATE, sharded=False)
# on a cluster a round is one call per shard: its sessions' keys are in many slots of one
# node, which a script may touch when it says so (Redis 7+; sharded pub/sub needs 7 too)
APPEND_MANY_LUA_SHARDED = "#!lua flags=allow-cross-slot-keys\n" + with_publish(
    APPEND_MANY_LUA_TEMPLATE, sharded=True
)

# A notice: the session's tag, the stream's last id before the entries, the job id, then
# per entry its id, type and data; or the tag and "deleted" (`session.deleted`). A message
# on a notices channel is a list of notices.
DELETED = "deleted"
Notice = list[str]
_notices_decoder = msgspec.msgpack.Decoder(list[Notice])


def decode_notices(message: bytes) -> list[Notice]:
    return _notices_decoder.decode(message)


async def publish_deleted(redis: Redis, keys: Keys, session: SessionRef) -> None:
    """Tell every fan-out that the session is gone, where the append script announces its
    entries: `SPUBLISH` on the session's channel on a cluster, the notices channel
    standalone."""
    message = msgspec.msgpack.encode([[keys.tag(session), DELETED]])
    if isinstance(redis, ClusterRedis):
        await redis.execute_command("SPUBLISH", keys.notify(session), message)
    else:
        await redis.publish(keys.notices, message)


# KEYS tombstone, stream, marks; ARGV the tombstone's lifetime (s). The tombstone and the
# end of the session's stream data in one step: the append script relies on no marks
# existing while the tombstone does (it skips the tombstone lookup for a job that has a
# queued mark).
DELETE_SESSION_LUA = """
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
"""


async def delete_stream_data(redis: Redis, keys: Keys, session: SessionRef, tomb_s: int) -> None:
    """Set the session's tombstone and delete its stream and marks, atomically: from then
    on every append to the session is refused."""
    tomb, stream, marks = keys.tombstone(session), keys.stream(session), keys.marks(session)
    await awaited(
        redis.register_script(DELETE_SESSION_LUA)(keys=[tomb, stream, marks], args=[tomb_s])
    )


class StreamClosed(SpoolError):
    """The append was refused: the job already ended, or a newer attempt owns it."""


class WorkerOwned(SpoolError):
    """An append with `attempt=-1` was refused: a worker already runs the job."""


NOT_STARTED_ONLY = -1  # `attempt` for appends that only apply while no worker attempt has begun


class Outgoing(msgspec.Struct, array_like=True):
    """One event ready to append: its type, its seq and its encoded JSON."""

    type: str
    seq: int
    data: bytes


class JobMarks(msgspec.Struct):
    queued_id: bytes | None
    terminal_id: bytes | None
    last_seq: int | None
    attempt: int

    @staticmethod
    def fields(job_id: str) -> list[str]:
        """The marks hash's fields that `of` decodes (`HMGET` on `Keys.marks`)."""
        return [f"{job_id}:q", f"{job_id}:t", f"{job_id}:s", f"{job_id}:a"]

    @classmethod
    def of(cls, raw: list[bytes | None]) -> "JobMarks":
        q, t, s, a = raw
        return cls(
            queued_id=q,
            terminal_id=t,
            last_seq=int(s) if s is not None else None,
            attempt=int(a) if a is not None else 0,
        )


class StreamWriter:
    """Appends batches of events to session streams on one Redis."""

    def __init__(self, redis: Redis, keys: Keys, retention_s: int, maxlen: int = 0) -> None:
        self._redis = redis
        self.keys = keys
        sharded = isinstance(redis, ClusterRedis)
        self._lua = APPEND_LUA_SHARDED if sharded else APPEND_LUA
        self._many_lua = APPEND_MANY_LUA_SHARDED if sharded else APPEND_MANY_LUA
        self._script = redis.register_script(self._lua)
        self._many_sha = redis.register_script(self._many_lua).sha
        self._scripts = scripts_of(redis)
        self._retention_s = retention_s
        self._maxlen = maxlen
        self._own: AbstractConnection | None = None  # see `_own_call`
        self._own_lock = asyncio.Lock()

    async def append_many(self, appends: Sequence["Append"]) -> list[int | SpoolError]:
        """Several appends (of different jobs) in one script call: one round trip, one
        script invocation for all (on a cluster: one per shard, all shards at once).

        Each append's outcome is the number of entries it wrote (0 for a resent batch), or
        its `StreamClosed`/`WorkerOwned`; a connection error fails the whole call
        (resending is safe: appends are idempotent).
        """
        if not isinstance(self._redis, ClusterRedis):
            return await self._append_group(appends)
        nodes = self._redis.group_by_node(self.keys.stream(a.session) for a in appends)
        groups = list(nodes.values())
        replies = await asyncio.gather(
            *(self._append_group([appends[i] for i in group]) for group in groups)
        )
        results: list[int | SpoolError] = [0] * len(appends)
        for group, reply in zip(groups, replies, strict=True):
            for i, result in zip(group, reply, strict=True):
                results[i] = result
        return results

    async def _append_group(self, appends: Sequence["Append"]) -> list[int | SpoolError]:
        k = self.keys
        flat: list[Any] = []
        for a in appends:
            flat += (k.tag(a.session), a.job_id, a.attempt, len(a.batch))
            for out in a.batch:  # data as str: Redis's cmsgpack has no bin type
                flat += (out.type, out.seq, out.data.decode())
        first = appends[0].session
        keys_ = [k.stream(first), k.marks(first), k.tombstone(first)]
        args = [self._retention_s, self._maxlen, _pack(flat), k.notices]
        # a round lost to NOSCRIPT did not run: run again once loaded (on a cluster: on
        # every primary); idempotent anyway, written seqs are skipped
        results = await self._scripts.run(
            self._many_lua, self._many_sha, lambda: self._evalsha_many(keys_, args)
        )
        return [_outcome(r) for r in results]

    async def _evalsha_many(self, keys_: list[str], args: list[Any]) -> list[Any]:
        # EVALSHA directly: redis-py's script object would send SCRIPT EXISTS first
        if isinstance(self._redis, ClusterRedis):  # routed per shard by the cluster client
            reply = self._redis.evalsha(self._many_sha, len(keys_), *keys_, *args)
            results: list[Any] = await reply  # type: ignore[misc]  # redis-py types it as str
            return results
        own: list[Any] = await self._own_call("EVALSHA", self._many_sha, len(keys_), *keys_, *args)
        return own

    async def _own_call(self, *command: Any) -> Any:
        """One command on the writer's own connection, taken from the pool once and kept.

        A round is one command every few milliseconds; through `execute_command` each paid
        redis-py's pool checkout and release (a condition, a timeout, a socket poll), its
        retry wrapper and its reply callbacks: ~36 µs of the worker's CPU per call against
        ~8 µs here. Any failure but a Redis error reply drops the connection (the next
        call takes a fresh one; the batcher resends, appends are idempotent)."""
        async with self._own_lock:
            conn = self._own
            if conn is None:
                conn = self._own = await self._redis.connection_pool.get_connection()
            try:
                await conn.send_packed_command(conn.pack_command(*command), check_health=False)
                return await conn.read_response()
            except ResponseError:
                raise  # a reply (NOSCRIPT, ...): the connection is in step
            except BaseException:
                self._own = None
                with contextlib.suppress(Exception):
                    await conn.disconnect()
                await self._redis.connection_pool.release(conn)
                raise

    def _call(
        self, session: SessionRef, job_id: str, attempt: int, batch: Sequence[Outgoing]
    ) -> tuple[list[str], list[Any]]:
        k = self.keys
        args: list[Any] = [job_id, attempt, self._retention_s, self._maxlen]
        args += (k.notices, k.tag(session))
        for out in batch:
            args += (out.type, out.seq, out.data)
        return [k.stream(session), k.marks(session), k.tombstone(session)], args

    async def append(
        self, session: SessionRef, job_id: str, attempt: int, batch: Sequence[Outgoing]
    ) -> list[bytes]:
        """Append `batch` in order; returns the new stream ids (a resent batch returns `[]`).

        `attempt` ≥ 1 is a worker's attempt (older attempts are fenced off); 0 is the API
        (no fence); `NOT_STARTED_ONLY` appends only if no worker attempt has begun.
        """
        keys_, args = self._call(session, job_id, attempt, batch)
        try:
            ids: list[bytes] = await awaited(self._script(keys=keys_, args=args))
        except ResponseError as exc:
            refusal = _refusal(exc)
            if refusal is None:
                raise
            raise refusal from exc
        return ids


class Append(msgspec.Struct):
    session: SessionRef
    job_id: str
    attempt: int
    batch: Sequence[Outgoing]


def _refusal(exc: ResponseError) -> SpoolError | None:
    """The script's own refusals, as typed errors; None for any other Redis error."""
    text = str(exc)
    if text.startswith("SPOOL_CLOSED"):
        return StreamClosed(text.removeprefix("SPOOL_CLOSED "))
    if text.startswith("SPOOL_STARTED"):
        return WorkerOwned(text.removeprefix("SPOOL_STARTED "))
    return None


_pack = msgspec.msgpack.Encoder().encode


def _outcome(result: Any) -> int | SpoolError:
    """One append's part of an `APPEND_MANY_LUA` reply: its entry count, or its refusal."""
    if isinstance(result, bytes):
        refusal = _refusal(ResponseError(result.decode()))
        if refusal is None:
            raise ResponseError(result.decode())
        return refusal
    return int(result)


async def job_marks(redis: Redis, keys: Keys, session: SessionRef, job_id: str) -> JobMarks:
    raw: list[bytes | None] = await awaited(
        redis.hmget(keys.marks(session), JobMarks.fields(job_id))
    )
    return JobMarks.of(raw)
