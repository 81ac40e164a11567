"""Appending to a session's Redis Stream, atomically with the job's marks.

One Lua script per batch: `XADD` every event not yet written (fields `t` type, `j` job
id, `d` the exact JSON the client receives; by `seq`, so a resent batch is a no-op),
record the job's queued/terminal ids and last seq, refuse writes after the job's
terminal event, from an attempt older than the newest one, for a job this session never
queued (its session was deleted or expired: a late worker cannot recreate the stream),
or while the session's tombstone exists. The marks count the session's live jobs
(`job.queued` without a terminal event): while any is live the stream and marks have no
TTL; when the last one ends they get `SPOOL_RETENTION_S`. Then publish the new entries
on the session's notify channel together with the id the stream ended at before them: a
fan-out that holds everything up to that id appends them without reading the stream.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from spool.shared.cluster import ClusterRedis
from spool.shared.connections import awaited
from spool.shared.errors import SpoolError
from spool.shared.keys import Keys, SessionRef
from spool_client.events import TERMINAL_TYPES

_TERMINAL = " or ".join(f"t == '{t}'" for t in sorted(TERMINAL_TYPES))

APPEND_LUA_TEMPLATE = f"""
local stream, marks, tomb = KEYS[1], KEYS[2], KEYS[3]
local job, attempt, ttl, maxlen, channel = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', tomb) == 1 then
  return redis.error_reply('SPOOL_CLOSED the session was deleted')
end
if attempt < 0 and redis.call('HEXISTS', marks, job .. ':a') == 1 then
  return redis.error_reply('SPOOL_STARTED a worker runs the job')
end
local last = tonumber(redis.call('HGET', marks, job .. ':s') or '-1')
if tonumber(ARGV[#ARGV - 1]) <= last then
  return {{}}
end
if redis.call('HEXISTS', marks, job .. ':t') == 1 then
  return redis.error_reply('SPOOL_CLOSED job already ended')
end
if ARGV[6] ~= 'job.queued' and redis.call('HEXISTS', marks, job .. ':q') == 0 then
  return redis.error_reply('SPOOL_CLOSED the job is not in this session (deleted or expired)')
end
if attempt > 0 then
  local owner = tonumber(redis.call('HGET', marks, job .. ':a') or '0')
  if owner > attempt then
    return redis.error_reply('SPOOL_CLOSED attempt ' .. owner .. ' owns the job')
  end
  redis.call('HSET', marks, job .. ':a', attempt)
end
local ids = {{}}
local prev = redis.call('HGET', marks, '_last') or '0-0'
local note = {{prev, job}}
for i = 6, #ARGV, 3 do
  local t, seq, d = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  if seq > last then
    local id
    if maxlen ~= '0' then
      id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 't', t, 'j', job, 'd', d)
    else
      id = redis.call('XADD', stream, '*', 't', t, 'j', job, 'd', d)
    end
    ids[#ids + 1] = id
    note[#note + 1] = id
    note[#note + 1] = t
    note[#note + 1] = d
    last = seq
    if t == 'job.queued' then
      redis.call('HSET', marks, job .. ':q', id)
      redis.call('HINCRBY', marks, '_live', 1)
    end
    if {_TERMINAL} then
      redis.call('HSET', marks, job .. ':t', id)
      redis.call('HINCRBY', marks, '_live', -1)
    end
  end
end
redis.call('HSETNX', marks, '_born', ids[1])
redis.call('HSET', marks, job .. ':s', last, '_last', ids[#ids])
if tonumber(redis.call('HGET', marks, '_live') or '0') > 0 then
  redis.call('PERSIST', stream)
  redis.call('PERSIST', marks)
else
  redis.call('EXPIRE', stream, ttl)
  redis.call('EXPIRE', marks, ttl)
end
redis.call('@PUBLISH@', channel, cmsgpack.pack(note))
return ids
"""
# standalone: PUBLISH; on a cluster: SPUBLISH, which stays on the shard that holds the
# session's slot (the notify channel shares the session's hash tag) instead of going to
# every node of the cluster
APPEND_LUA = APPEND_LUA_TEMPLATE.replace("@PUBLISH@", "PUBLISH")
APPEND_LUA_SHARDED = APPEND_LUA_TEMPLATE.replace("@PUBLISH@", "SPUBLISH")


async def publish_notice(redis: Redis, channel: str, message: bytes) -> None:
    """Publish on a session's notify channel as the append script does: `SPUBLISH` on a
    cluster (the hub subscribes per shard), `PUBLISH` standalone."""
    if isinstance(redis, ClusterRedis):
        await redis.execute_command("SPUBLISH", channel, message)
    else:
        await redis.publish(channel, message)


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


DELETED_NOTICE = msgspec.msgpack.encode(["deleted"])  # on the notify channel: the session is gone


def decode_notice(data: bytes) -> tuple[str, str, list[tuple[str, str, str]]]:
    """What an append published: `(the stream's last id before it, the job id,
    [(id, type, data), ...])`."""
    flat = _notice_decoder.decode(data)
    rest = flat[2:]
    return flat[0], flat[1], [(rest[i], rest[i + 1], rest[i + 2]) for i in range(0, len(rest), 3)]


_notice_decoder = msgspec.msgpack.Decoder(list[str])


class JobMarks(msgspec.Struct):
    queued_id: bytes | None
    terminal_id: bytes | None
    last_seq: int | None
    attempt: int


class StreamWriter:
    """Appends batches of events to session streams on one Redis."""

    def __init__(self, redis: Redis, keys: Keys, retention_s: int, maxlen: int = 0) -> None:
        self._redis = redis
        self.keys = keys
        self._lua = APPEND_LUA_SHARDED if isinstance(redis, ClusterRedis) else APPEND_LUA
        self._script = redis.register_script(self._lua)
        self._retention_s = retention_s
        self._maxlen = maxlen

    async def append_many(self, appends: Sequence["Append"]) -> list[list[bytes] | SpoolError]:
        """Several appends (of different jobs) in one pipeline: one round trip for all.

        Each append's outcome is its new ids, or its `StreamClosed`/`WorkerOwned`; a
        connection error fails the whole call (resending is safe: appends are idempotent).
        """
        calls = [self._call(a.session, a.job_id, a.attempt, a.batch) for a in appends]
        results = await self._evalsha_all(calls)
        if any(isinstance(r, NoScriptError) for r in results):  # Redis restarted or flushed
            await self._redis.script_load(self._lua)  # on a cluster: on every primary
            results = await self._evalsha_all(calls)  # idempotent: written seqs are skipped
        return [_outcome(r) for r in results]

    async def _evalsha_all(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        if not isinstance(self._redis, ClusterRedis):
            return await self._evalsha_on(self._redis, calls)
        # a cluster: one pipeline per shard, all shards at once
        groups = list(self._redis.group_by_node(keys_[0] for keys_, _ in calls).values())
        replies = await asyncio.gather(
            *(self._evalsha_on(self._redis, [calls[i] for i in group]) for group in groups)
        )
        results: list[Any] = [None] * len(calls)
        for group, reply in zip(groups, replies, strict=True):
            for i, result in zip(group, reply, strict=True):
                results[i] = result
        return results

    async def _evalsha_on(
        self, redis: Redis, calls: list[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        # EVALSHA directly: a script object in a pipeline makes redis-py send SCRIPT EXISTS
        # first, one more round trip per call
        async with redis.pipeline(transaction=False) as pipe:
            for keys_, args in calls:
                pipe.evalsha(self._script.sha, len(keys_), *keys_, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    def _call(
        self, session: SessionRef, job_id: str, attempt: int, batch: Sequence[Outgoing]
    ) -> tuple[list[str], list[Any]]:
        k = self.keys
        args: list[Any] = [job_id, attempt, self._retention_s, self._maxlen, k.notify(session)]
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


def _outcome(result: Any) -> list[bytes] | SpoolError:
    if isinstance(result, ResponseError):
        refusal = _refusal(result)
        if refusal is None:
            raise result
        return refusal
    if isinstance(result, Exception):
        raise result
    return list(result)


async def job_marks(redis: Redis, keys: Keys, session: SessionRef, job_id: str) -> JobMarks:
    q, t, s, a = await awaited(
        redis.hmget(
            keys.marks(session), [f"{job_id}:q", f"{job_id}:t", f"{job_id}:s", f"{job_id}:a"]
        )
    )
    return JobMarks(
        queued_id=q,
        terminal_id=t,
        last_seq=int(s) if s is not None else None,
        attempt=int(a) if a is not None else 0,
    )
