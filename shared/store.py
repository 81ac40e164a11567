"""Job records and session records on the main Redis.

All the records of one session's jobs are one hash (`Keys.records`), field
`<job_id>.<name>` with one JSON value each: the API and the worker each update their own
fields without a read-modify-write, and the whole session (its records included) has
one lifetime in one cluster slot. Job ids are global: `Keys.job_index` maps a job id to
its session (the tenant is part of it, so another tenant's job is simply not found).

Nothing here recreates a deleted or expired session: updates write only while the
session's records exist, and a new job is refused while the session's tombstone lives.
"""

import asyncio
from typing import Any

import msgspec
from redis.asyncio import Redis

from spool.shared import autopipe
from spool.shared.connections import awaited
from spool.shared.ids import now_ms
from spool.shared.jobs import JobRecord
from spool.shared.keys import Keys, SessionRef, index_value, parse_index

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode

RECORD_FIELDS = tuple(f.name for f in msgspec.structs.fields(JobRecord))

# A new job in a session. A live session (no TTL: a job is queued or running) keeps no
# TTL; a new or idle one gets the retention TTL until the job is admitted (which removes
# it), so keys of a submission that died half-way still expire.
# create(session, records, jobs, tomb, tenant, now, ttl, job_id, fields, from) -> the
# session's job count, or 'deleted'; `fields[from..]` are the record's field/value pairs.
# Also inside the one-script submission (`shared/submit.py`).
CREATE_FUNCTION = """
local function create(session, records, jobs, tomb, tenant, now, ttl, job_id, fields, from)
  if redis.call('EXISTS', tomb) == 1 then
    return 'deleted'
  end
  redis.call('HSETNX', session, 'tenant', tenant)
  redis.call('HSETNX', session, 'created_at_ms', now)
  redis.call('HSET', records, unpack(fields, from))
  local count = redis.call('RPUSH', jobs, job_id)
  for _, key in ipairs({session, records, jobs}) do
    if redis.call('TTL', key) ~= -1 then
      redis.call('EXPIRE', key, ttl)
    end
  end
  return count
end
"""

CREATE_LUA = (
    CREATE_FUNCTION
    + """
return create(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV, 5)
"""
)

# update_record(records key, field/value list) -> 1, or 0 (nothing written) if the session
# is gone; used inside other scripts too (a job's end records its history in the same call)
UPDATE_FUNCTION = """
local function update_record(records, fields)
  if redis.call('EXISTS', records) == 0 then
    return 0
  end
  redis.call('HSET', records, unpack(fields))
  return 1
end
"""

UPDATE_LUA = UPDATE_FUNCTION + "return update_record(KEYS[1], ARGV)"


def record_fields(rec: JobRecord) -> list[str]:
    """The record as the records hash's field/value pairs: `<job_id>.<name>`, its JSON."""
    fields: list[str] = []
    for name, value in msgspec.structs.asdict(rec).items():
        fields += (f"{rec.job_id}.{name}", _encode(value).decode())
    return fields


def update_args(job_id: str, fields: dict[str, Any]) -> list[Any]:
    """Some of a job's fields as the records hash's field/value pairs (`update_record`)."""
    args: list[Any] = []
    for name, value in fields.items():
        args += (f"{job_id}.{name}", _encode(value))
    return args


class SessionInfo(msgspec.Struct):
    tenant: str
    created_at_ms: int


class SessionDeleted(Exception):
    """The session was just deleted: its id cannot be used again until its tombstone ends."""


class JobStore:
    def __init__(self, redis: Redis, keys: Keys, retention_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.retention_s = retention_s
        self._create = redis.register_script(CREATE_LUA)
        self._update = redis.register_script(UPDATE_LUA)
        self._pipe = autopipe.shared(redis)  # updates of one loop turn share a round trip

    async def create(self, rec: JobRecord) -> int:
        """Claim the session if new, write the record and add it to the session's job list;
        returns how many jobs the session has. Raises `SessionDeleted` while the session's
        tombstone lives."""
        s, k = rec.session, self.keys
        keys, args = self.create_args(rec)
        args += record_fields(rec)
        outcome, _ = await asyncio.gather(
            awaited(self._create(keys=keys, args=args)),
            awaited(self.redis.set(k.job_index(rec.job_id), index_value(s))),
        )
        if outcome == b"deleted":
            await self.redis.delete(k.job_index(rec.job_id))
            raise SessionDeleted(s.session_id)
        return int(outcome)

    def create_args(self, rec: JobRecord) -> tuple[list[str], list[Any]]:
        """`CREATE_FUNCTION`'s keys (session, records, jobs, tombstone) and arguments
        (tenant, now, ttl, job id), without the record's fields (`record_fields`)."""
        s, k = rec.session, self.keys
        args: list[Any] = [rec.tenant, now_ms(), self.retention_s, rec.job_id]
        return [k.session(s), k.records(s), k.jobs(s), k.tombstone(s)], args

    async def update(self, s: SessionRef, job_id: str, **fields: Any) -> bool:
        """Set some of the job's fields; False (nothing written) if the session is gone."""
        args = update_args(job_id, fields)
        written: int = await self._pipe.script(self._update, [self.keys.records(s)], args)
        return bool(written)

    async def locate(self, job_id: str) -> SessionRef | None:
        """The session a job belongs to (None: unknown job)."""
        raw: bytes | None = await awaited(self.redis.get(self.keys.job_index(job_id)))
        return parse_index(raw) if raw is not None else None

    async def load(self, s: SessionRef, job_id: str) -> JobRecord | None:
        raw: list[bytes | None] = await awaited(self.redis.hmget(*self.record_query(s, job_id)))
        return decode_record(raw)

    def record_query(self, s: SessionRef, job_id: str) -> tuple[str, list[str]]:
        """The `HMGET` (key, fields) that reads a job's record (`decode_record` decodes it)."""
        return self.keys.records(s), [f"{job_id}.{name}" for name in RECORD_FIELDS]

    async def session(self, s: SessionRef) -> SessionInfo | None:
        owner, created = await awaited(
            self.redis.hmget(self.keys.session(s), ["tenant", "created_at_ms"])
        )
        if owner is None or created is None:
            return None
        return SessionInfo(tenant=owner.decode(), created_at_ms=int(created))

    async def load_many(self, s: SessionRef, job_ids: list[str]) -> list[JobRecord]:
        return [r for r in [await self.load(s, j) for j in job_ids] if r is not None]

    async def job_ids(self, s: SessionRef) -> list[str]:
        ids = await awaited(self.redis.lrange(self.keys.jobs(s), 0, -1))
        return [j.decode() for j in ids]

    async def keep_index(self, s: SessionRef, ttl_s: int | None) -> None:
        """Give every job of the session an index entry living `ttl_s` (None: no TTL), as
        long as the session's other keys (called when the session turns live or idle)."""
        job_ids = await self.job_ids(s)
        if not job_ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.set(self.keys.job_index(job_id), index_value(s), ex=ttl_s)
            await pipe.execute()

    async def delete_session(self, s: SessionRef, job_ids: list[str]) -> None:
        k = self.keys
        await self.redis.delete(
            k.session(s),
            k.jobs(s),
            k.records(s),
            k.history(s),
            k.pending(s),
            *(k.job_index(j) for j in job_ids),
        )


def decode_record(raw: list[bytes | None]) -> JobRecord | None:
    """A record from its `record_query` reply; None if there is none (or it is from an
    incompatible version)."""
    fields = {n: _decode(v) for n, v in zip(RECORD_FIELDS, raw, strict=True) if v is not None}
    if not fields:
        return None
    try:
        return msgspec.convert(fields, JobRecord)
    except msgspec.ValidationError:  # a record from an incompatible version
        return None
