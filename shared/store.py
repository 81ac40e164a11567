"""Job records and session ownership on the main Redis.

A job record is a hash with one JSON value per field, so that the API and the worker
can each update their own fields without a read-modify-write.
"""

from typing import Any

import msgspec
from redis.asyncio import Redis

from shared import keys
from shared.connections import awaited
from shared.ids import now_ms
from shared.jobs import JobRecord

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


class SessionInfo(msgspec.Struct):
    tenant: str
    created_at_ms: int


class JobStore:
    def __init__(self, redis: Redis, retention_s: int) -> None:
        self.redis = redis
        self.retention_s = retention_s

    async def create(self, rec: JobRecord) -> None:
        """Write a new job's record and add it to its session's job list, in one transaction."""
        key, jobs = keys.job_key(rec.job_id), keys.session_jobs_key(rec.session_id)
        fields = msgspec.structs.asdict(rec)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={k: _encode(v) for k, v in fields.items()})
            pipe.expire(key, self.retention_s)
            pipe.rpush(jobs, rec.job_id)
            pipe.expire(jobs, self.retention_s)
            await pipe.execute()

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

    async def claim_session(self, session_id: str, tenant: str) -> SessionInfo:
        """Create the session for `tenant` if new; return whoever owns it."""
        key = keys.session_key(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "tenant", tenant)
            pipe.hsetnx(key, "created_at_ms", str(now_ms()))
            pipe.expire(key, self.retention_s)
            pipe.hmget(key, ["tenant", "created_at_ms"])
            *_, (owner, created) = await pipe.execute()
        return SessionInfo(tenant=owner.decode(), created_at_ms=int(created))

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
