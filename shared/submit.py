"""A submission in one script call, when the streams live on the main Redis.

`POST /v1/jobs` counts the job against its tenant's active limit, claims the session and
writes the job's record (`shared/store.py`), indexes the job, appends `job.queued` to
the session's stream (`shared/streams.py`) and places the job in the session's FIFO,
enqueueing it when it is first in line (`shared/sessions.py`). With a separate stream
Redis (`SPOOL_STREAM_REDIS_URL`) those are four round trips (`api/submission.py`); on one
Redis this script runs the same Lua functions in the same order, as one call: a quarter
of the round trips, and no half-written submission to undo, because every refusal
(tombstone, `on_busy: reject` with a busy session, the tenant's limit) is checked before
anything is written.
"""

from typing import Any

import msgspec
from redis.asyncio import Redis

from spool.shared import autopipe
from spool.shared.jobs import JobRecord
from spool.shared.keys import Keys, SessionRef, index_value
from spool.shared.limits import ADMIT_FUNCTION as ACTIVE_FUNCTION
from spool.shared.limits import TenantLimits
from spool.shared.sessions import ADMIT_FUNCTION, SessionQueue
from spool.shared.store import CREATE_FUNCTION, JobStore, record_fields
from spool.shared.streams import APPEND_FUNCTION_TEMPLATE, Outgoing, with_publish

# KEYS: 1-2 active, tenants; 3-6 session, records, jobs, tombstone; 7 the job's index;
# 8-9 stream, marks; 10-18 the FIFO's keys (`ADMIT_FUNCTION`).
# ARGV: 1 mode, 2 index value, 3 job id, 4 index prefix, 5-9 `admit_active`'s arguments,
# 10-14 the enqueue arguments, 15-17 ttl, maxlen, session tag, 18-20 the `job.queued`
# triple, 21-24 `create`'s arguments (tenant, now, ttl, job id), 25 the record's fields and
# values as ONE MessagePack array (redis-py packs one argument, not fifty), 26 the notices
# channel.
# Returns {'run' | 'wait', the job.queued id, the marks' `_born`, the ids ahead...}, or
# {'deleted' | 'busy' | 'limit'} with nothing written.
SUBMIT_LUA = (
    ACTIVE_FUNCTION
    + CREATE_FUNCTION
    + with_publish(APPEND_FUNCTION_TEMPLATE, sharded=False)
    + ADMIT_FUNCTION
    + """
local mode, index, job = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[6]) == 1 then
  return {'deleted'}
end
if mode == 'reject' and redis.call('LLEN', KEYS[10]) > 0 then
  return {'busy'}
end
if admit_active(KEYS[1], KEYS[2], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]) == 0 then
  return {'limit'}
end
local count = create(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[21], ARGV[22], ARGV[23],
  ARGV[24], cmsgpack.unpack(ARGV[25]), 1)
redis.call('SET', KEYS[7], index)
local note = append(KEYS[8], KEYS[9], KEYS[6], job, 0, ARGV[15], ARGV[16], ARGV[17], ARGV,
  18, 20)
if type(note) == 'string' then
  return redis.error_reply(note)  -- not reached: the tombstone was checked above
end
publish_notes(ARGV[26])
local admitted = admit(KEYS, 10, job, mode, ARGV, 10)
if admitted[1] == 'run' and count > 1 then
  -- an idle session turned live: its jobs' index entries lose their TTL with it
  for _, id in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
    redis.call('SET', ARGV[4] .. id, index)
  end
end
-- the job.queued id and the stream's incarnation: a fan-out starts there without a read
local out = {admitted[1], note and note[4], redis.call('HGET', KEYS[9], '_born')}
for n = 2, #admitted do out[#out + 1] = admitted[n] end
return out
"""
)


_pack = msgspec.msgpack.Encoder().encode


class Submitted:
    """The script's verdict: `run`/`wait` (queued; `queued_id` is `job.queued`'s stream id,
    the stream's newest entry when the script ran, `born` the stream's incarnation (its
    marks' `_born`), `ahead` the session's unfinished jobs before it), or
    `deleted`/`busy`/`limit`."""

    def __init__(
        self,
        verdict: str,
        queued_id: bytes | None,
        ahead: list[str],
        born: bytes | None = None,
    ) -> None:
        self.verdict = verdict
        self.queued_id = queued_id
        self.ahead = ahead
        self.born = born


class Submitter:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        store: JobStore,
        limits: TenantLimits,
        sessions: SessionQueue,
        maxlen: int,
    ) -> None:
        self._script = redis.register_script(SUBMIT_LUA)
        # a burst of submissions: the scripts of one loop turn share a round trip
        self._pipe = autopipe.shared(redis)
        self._keys = keys
        self._store = store
        self._limits = limits
        self._sessions = sessions
        self._maxlen = maxlen

    async def submit(
        self, session: SessionRef, rec: JobRecord, queued: Outgoing, mode: str
    ) -> Submitted:
        """Admit, record, append `queued` and enqueue `rec`'s job (`mode`: `reject` refuses
        a busy session, `enqueue` queues behind it)."""
        k, job_id = self._keys, rec.job_id
        active_keys, active_args = self._limits.admit_args(session.tenant, job_id)
        create_keys, create_args = self._store.create_args(rec)
        admit_keys, enqueue_args = self._sessions.admit_args(session, job_id)
        keys = [
            *active_keys,
            *create_keys,
            k.job_index(job_id),
            k.stream(session),
            k.marks(session),
            *admit_keys,
        ]
        args: list[Any] = [mode, index_value(session), job_id, k.job_index("")]
        args += [*active_args, *enqueue_args]
        args += [self._store.retention_s, self._maxlen, k.tag(session)]
        args += [queued.type, queued.seq, queued.data, *create_args, _pack(record_fields(rec))]
        args.append(k.notices)
        raw: list[bytes] = await self._pipe.script(self._script, keys, args)
        verdict = raw[0].decode()
        if len(raw) == 1:
            return Submitted(verdict, None, [])
        return Submitted(verdict, raw[1], [j.decode() for j in raw[3:]], raw[2])
