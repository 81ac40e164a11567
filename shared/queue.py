"""Enqueueing a job for the workers: arq's queue format, in one round trip, with a wake-up.

arq's `enqueue_job` costs four round trips (WATCH, EXISTS, MULTI/EXEC). This script
writes the same keys with the same rule (nothing if the job or its result exists) and
publishes on the wake-up channel (`Keys.wake_channel`) so idle workers poll at once. Jobs
are enqueued by function name, so the API needs none of the worker's code.
"""

from arq.constants import default_queue_name, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import Redis

from spool.shared import serializer
from spool.shared.connections import awaited
from spool.shared.ids import now_ms
from spool.shared.keys import Keys, SessionRef

JOB_FUNCTION = "run_job"
EXPIRES_MS = 24 * 3600 * 1000  # arq's default: a job not started within a day is dropped

# enqueue(job key, result key, queue, payload, expires ms, score, job id, wake channel)
# -> 1 | 0; used inside other scripts too (the session FIFO admits and enqueues in one call)
ENQUEUE_FUNCTION = """
local function enqueue(job_key, result_key, queue, payload, expires_ms, score, job_id, wake)
  if redis.call('EXISTS', job_key, result_key) > 0 then
    return 0
  end
  redis.call('SET', job_key, payload, 'PX', expires_ms)
  redis.call('ZADD', queue, score, job_id)
  redis.call('PUBLISH', wake, '')
  return 1
end
"""

ENQUEUE_LUA = (
    ENQUEUE_FUNCTION
    + """
return enqueue(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
"""
)


class JobQueue:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._script = redis.register_script(ENQUEUE_LUA)
        self._keys = keys

    async def enqueue(self, s: SessionRef, job_id: str, arq_id: str | None = None) -> bool:
        """Queue `run_job(job_id, tenant, session_id)` as arq job `arq_id` (default: the job
        id; a parked job's continuation has its own); False if that arq job is queued."""
        arq_id = arq_id or job_id
        keys_ = enqueue_keys(self._keys, arq_id)
        args = enqueue_args(self._keys, s, job_id, arq_id)
        added: int = await awaited(self._script(keys=keys_, args=args))
        return bool(added)


def enqueue_keys(keys: Keys, arq_id: str) -> list[str]:
    assert keys.queue != default_queue_name  # Spool's queue is its own
    return [job_key_prefix + arq_id, result_key_prefix + arq_id, keys.queue]


def enqueue_args(
    keys: Keys, s: SessionRef, job_id: str, arq_id: str | None = None
) -> list[bytes | int | str]:
    """arq's job payload (msgspec, not pickle), its expiry, its score (now), the arq id and
    the wake-up channel. The payload names the job's session, so the worker needs no
    look-up."""
    now = now_ms()
    payload = serialize_job(
        JOB_FUNCTION,
        (job_id, s.tenant, s.session_id),
        {},
        None,
        now,
        serializer=serializer.serialize,
    )
    return [payload, EXPIRES_MS, now, arq_id or job_id, keys.wake_channel]


def continuation_id(job_id: str, continuation: int) -> str:
    """The arq job id of a parked job's n-th continuation (`job-…~n`)."""
    return f"{job_id}~{continuation}"


def parse_arq_id(arq_id: str) -> tuple[str, int]:
    """`(job id, continuation)`: 0 for the job's own arq job."""
    job_id, sep, n = arq_id.rpartition("~")
    return (job_id, int(n)) if sep and n.isdigit() else (arq_id, 0)
