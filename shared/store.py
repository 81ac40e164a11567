"""Job records and session ownership on the main Redis.

A job record is a hash with one JSON value per field, so that the API and the worker
can each update their own fields without a read-modify-write.
"""

from typing import Any

import msgspec
from redis.asyncio import Redis

from spool.shared import keys
from spool.shared.connections import awaited
from spool.shared.ids import now_ms
from spool.shared.jobs import JobRecord

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


CREATE_LUA = """
local session, job, jobs = KEYS[1], KEYS[2], KEYS[3]
local tenant, now, ttl, job_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HSETNX', session, 'tenant', tenant)
redis.call('HSETNX', session, 'created_at_ms', now)
local owner = redis.call('HGET', session, 'tenant')
if owner ~= tenant then
  return owner
end
redis.call('EXPIRE', session, ttl)
redis.call('HSET', job, unpack(ARGV, 5))
redis.call('EXPIRE', job, ttl)
redis.call('RPUSH', jobs, job_id)
redis.call('EXPIRE', jobs, ttl)
return owner
"""


class SessionInfo(msgspec.Struct):
    tenant: str
    created_at_ms: int


class JobStore:
    def __init__(self, redis: Redis, retention_s: int) -> None:
        self.redis = redis
        self.retention_s = retention_s
        self._create = redis.register_script(CREATE_LUA)

    async def create(self, rec: JobRecord) -> str:
        """Claim the session for the job's tenant if new, and if the tenant owns it, write the
        record and add it to the session's job list. Returns the session's owner."""
        fields: list[Any] = []
        for name, value in msgspec.structs.asdict(rec).items():
            fields += (name, _encode(value))
        owner: bytes = await awaited(
            self._create(
                keys=[
                    keys.session_key(rec.session_id),
                    keys.job_key(rec.job_id),
                    keys.session_jobs_key(rec.session_id),
                ],
                args=[rec.tenant, now_ms(), self.retention_s, rec.job_id, *fields],
            )
        )
        return owner.decode()

    async def update(self, job_id: str, **fields: Any) -> None:
        key = keys.job_key(job_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={k: _encode(v) for k, v in fields.items()})
            pipe.expire(key, self.retention_s)
            await pipe.execute()

    async def load(self, job_id: str) -> JobRecord | None:
        raw = await awaited(self.redis.hgetall(keys.job_key(job_id)))
        if not raw:
            return None
        fields = {k.decode(): _decode(v) for k, v in raw.items()}
        try:
            return msgspec.convert(fields, JobRecord)
        except msgspec.ValidationError:  # a partial hash: the session was deleted mid-job
            return None

    async def session(self, session_id: str) -> SessionInfo | None:
        owner, created = await awaited(
            self.redis.hmget(keys.session_key(session_id), ["tenant", "created_at_ms"])
        )
        if owner is None or created is None:
            return None
        return SessionInfo(tenant=owner.decode(), created_at_ms=int(created))

    async def touch_session(self, session_id: str) -> None:
        """Keep the session's keys as long as its stream (retention after the last event)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in (keys.session_key(session_id), keys.session_jobs_key(session_id)):
                pipe.expire(key, self.retention_s)
            await pipe.execute()

    async def load_many(self, job_ids: list[str]) -> list[JobRecord]:
        return [r for r in [await self.load(j) for j in job_ids] if r is not None]

    async def job_ids(self, session_id: str) -> list[str]:
        ids = await awaited(self.redis.lrange(keys.session_jobs_key(session_id), 0, -1))
        return [j.decode() for j in ids]

    async def delete_session(self, session_id: str) -> None:
        job_ids = await self.job_ids(session_id)
        await self.redis.delete(
            keys.session_key(session_id),
            keys.session_jobs_key(session_id),
            keys.history_key(session_id),
            keys.pending_key(session_id),
            *(keys.job_key(j) for j in job_ids),
        )
