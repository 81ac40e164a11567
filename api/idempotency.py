"""`Idempotency-Key` (contract §2): the same key with the same body within 24 h returns the
first response and enqueues nothing.

The first request claims the key (SET NX) with the body's fingerprint; when it has been
accepted, the response is stored under the key. A repeat with the same body gets that
response; one with another body is a 422; one that arrives while the first is still
being accepted waits for it briefly.
"""

import asyncio
import hashlib

import msgspec
from redis.asyncio import Redis

from spool.api.errors import ApiError
from spool.shared.connections import awaited
from spool.shared.jobs import JobRequest
from spool.shared.keys import Keys

TTL_S = 24 * 3600
WAIT_FOR_FIRST_S = 5.0


class Accepted(msgspec.Struct):
    job_id: str
    session_id: str
    status: str
    events_url: str


class _Claim(msgspec.Struct):
    fingerprint: str
    response: Accepted | None = None


def fingerprint(req: JobRequest) -> str:
    """Equal for equal requests, whatever their JSON spacing or key order."""
    return hashlib.sha256(msgspec.json.encode(req)).hexdigest()


class Idempotency:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def claim(self, tenant: str, key: str, req: JobRequest) -> Accepted | None:
        """None: this request goes ahead. Otherwise the first request's response."""
        rkey = self._keys.idempotency(tenant, key)
        mine = _Claim(fingerprint(req))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_FOR_FIRST_S
        while True:
            if await self._redis.set(rkey, msgspec.json.encode(mine), nx=True, ex=TTL_S):
                return None
            raw = await awaited(self._redis.get(rkey))
            if raw is None:
                continue  # the first request gave up its claim: take it
            first = msgspec.json.decode(raw, type=_Claim)
            if first.fingerprint != mine.fingerprint:
                raise ApiError(
                    422,
                    "idempotency_key_reused",
                    "This Idempotency-Key was used with a different body.",
                )
            if first.response is not None:
                return first.response
            if loop.time() > deadline:
                raise ApiError(
                    409, "idempotency_in_progress", "A request with this key is still running."
                )
            await asyncio.sleep(0.05)

    async def complete(self, tenant: str, key: str, req: JobRequest, accepted: Accepted) -> None:
        claim = _Claim(fingerprint(req), accepted)
        await self._redis.set(
            self._keys.idempotency(tenant, key), msgspec.json.encode(claim), ex=TTL_S
        )

    async def release(self, tenant: str, key: str) -> None:
        await self._redis.delete(self._keys.idempotency(tenant, key))
