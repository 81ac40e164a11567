"""Human approval of tool calls (contract §7): where a parked job and its decisions live.

A job whose tool calls wait for a decision is *parked*: its loop state is the record's
`parked` field (written before `tool.approval_requested` goes out, so that any decision a
client makes on seeing the event finds its call), then its status becomes
`awaiting_approval` and the worker lets the job go: no slot, no provider connection.
Decisions are fields of the record (`keys.decision_field`), set once (`HSETNX`: a second
decision is a 409). The job continues as a new arq job, `<job id>~<n>` for its n-th
parking, enqueued by whoever completes the set of decisions (the API on the last
decision, or the worker when the decisions came in before it finished parking), by a
cancel, or by a worker sweeping `keys.approvals_due_key()` once the approvals expire.
Exactly one continuation runs: it must `claim` the record first, which succeeds once, and
only when the job may go on (decided, expired, or cancelled). Whoever wants the
continuation to run now also moves its entry in the due set to now, so that if its
enqueue is lost (the arq job of the same name is still finishing), the next sweep
enqueues it again; the entry leaves the set only when a continuation claims the job or
finds it stale.

Every check-and-set on the record is one Lua script, on the record's key alone.
"""

from typing import Any, Literal

import msgspec
from redis.asyncio import Redis

from spool.shared.connections import awaited
from spool.shared.ids import now_ms
from spool.shared.jobs import Decision, JobRecord, LoopState
from spool.shared.keys import Keys, SessionRef, decision_field
from spool.shared.queue import JobQueue, continuation_id

_ALL_DECIDED = """
local job, f = KEYS[1], ARGV[1]  -- the record's hash, and the prefix of its fields
local function decision(n, call_id)
  return f .. 'decision:' .. string.format('%d', n) .. ':' .. call_id
end
local function all_decided(state)
  for _, p in ipairs(state.pending) do
    if redis.call('HEXISTS', job, decision(state.continuation, p.call_id)) == 0 then
      return false
    end
  end
  return true
end
local function parked_state()
  local raw = redis.call('HGET', job, f .. 'parked')
  if not raw or raw == 'null' then return nil end
  return cjson.decode(raw)
end
"""

# decide(call id, decision JSON) -> {verdict, continuation}
DECIDE_LUA = (
    _ALL_DECIDED
    + """
local call_id = ARGV[2]
local state = parked_state()
if not state then return {'unknown', 0} end
local found = false
for _, p in ipairs(state.pending) do
  if p.call_id == call_id then found = true end
end
local n = state.continuation
if not found then return {'unknown', n} end
local status = redis.call('HGET', job, f .. 'status')
local resumed = tonumber(redis.call('HGET', job, f .. 'resumed') or '0')
if resumed >= n or (status ~= '"running"' and status ~= '"awaiting_approval"') then
  return {'closed', n}
end
if redis.call('HSETNX', job, decision(n, call_id), ARGV[3]) == 0 then return {'decided', n} end
if status == '"awaiting_approval"' and all_decided(state) then return {'ready', n} end
return {'recorded', n}
"""
)

# park(continuation) -> 1 when the job may go on at once (all decided, or a cancel came)
PARK_LUA = (
    _ALL_DECIDED
    + """
local state = parked_state()
if not state or state.continuation ~= tonumber(ARGV[2]) then return 0 end
if redis.call('HGET', job, f .. 'status') ~= '"running"' then return 0 end
redis.call('HSET', job, f .. 'status', '"awaiting_approval"')
if redis.call('HGET', job, f .. 'cancel_requested') == 'true' or all_decided(state) then
  return 1
end
return 0
"""
)

# claim(continuation, now ms) -> 1 claimed, 0 stale (not this parking, or taken up already),
# -1 not yet due, -2 the worker is still parking it
CLAIM_LUA = (
    _ALL_DECIDED
    + """
local n, now = tonumber(ARGV[2]), tonumber(ARGV[3])
local state = parked_state()
if not state or state.continuation ~= n then return 0 end
if tonumber(redis.call('HGET', job, f .. 'resumed') or '0') >= n then return 0 end
local status = redis.call('HGET', job, f .. 'status')
if status == '"running"' then return -2 end
if status ~= '"awaiting_approval"' then return 0 end
local go = redis.call('HGET', job, f .. 'cancel_requested') == 'true' or all_decided(state)
for _, p in ipairs(state.pending) do
  if now >= p.expires_at then go = true end
end
if not go then return -1 end
redis.call('HSET', job, f .. 'status', '"running"', f .. 'resumed', n)
return 1
"""
)

Verdict = Literal["unknown", "closed", "decided", "ready", "recorded"]
_encode = msgspec.json.Encoder().encode
_decode_decision = msgspec.json.Decoder(Decision).decode


def due_at(state: LoopState) -> int:
    return min((p.expires_at for p in state.pending), default=state.parked_at_ms)


class Approvals:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        """`redis`: where job records and arq's queue live (the main Redis)."""
        self.redis = redis
        self.keys = keys
        self._decide = redis.register_script(DECIDE_LUA)
        self._park = redis.register_script(PARK_LUA)
        self._claim = redis.register_script(CLAIM_LUA)
        self._queue = JobQueue(redis, keys)

    def _where(self, rec: JobRecord) -> tuple[list[str], str]:
        """The record's hash key and the prefix of its fields (the layout of `shared.store`)."""
        return [self.keys.records(rec.session)], f"{rec.job_id}."

    async def decide(self, rec: JobRecord, call_id: str, decision: Decision) -> tuple[Verdict, int]:
        """Record a decision; `ready` means it was the last one and the job may continue."""
        keys_, f = self._where(rec)
        reply: list[Any] = await awaited(
            self._decide(keys=keys_, args=[f, call_id, _encode(decision)])
        )
        verdict: Verdict = reply[0].decode()
        return verdict, int(reply[1])

    async def park(self, rec: JobRecord, state: LoopState) -> bool:
        """Mark the job as waiting (its state is saved already) and schedule its expiry;
        True when every decision is in already (the caller enqueues the continuation)."""
        await self.schedule(rec.job_id, state)
        keys_, f = self._where(rec)
        return bool(await awaited(self._park(keys=keys_, args=[f, state.continuation])))

    async def claim(self, rec: JobRecord, continuation: int, now: int) -> int:
        """1: this continuation runs the job now; 0: stale; -1: not yet due; -2: still being
        parked (see CLAIM_LUA)."""
        keys_, f = self._where(rec)
        return int(await awaited(self._claim(keys=keys_, args=[f, continuation, now])))

    async def schedule(self, job_id: str, state: LoopState, at_ms: int | None = None) -> None:
        """Put the continuation on the due set: at the approvals' expiry, or at `at_ms`."""
        member = continuation_id(job_id, state.continuation)
        when = due_at(state) if at_ms is None else at_ms
        await self.redis.zadd(self.keys.approvals_due(), {member: when})

    async def wake(self, s: SessionRef, job_id: str, continuation: int) -> None:
        """Run the continuation now (due now, and enqueued)."""
        member = continuation_id(job_id, continuation)
        await self.redis.zadd(self.keys.approvals_due(), {member: now_ms()})
        await self._queue.enqueue(s, job_id, member)

    async def unschedule(self, job_id: str, continuation: int) -> None:
        await self.redis.zrem(self.keys.approvals_due(), continuation_id(job_id, continuation))

    async def due(self, now: int, limit: int = 100) -> list[str]:
        """Continuations whose time has come (arq ids)."""
        members: list[bytes] = await self.redis.zrangebyscore(
            self.keys.approvals_due(), "-inf", now, start=0, num=limit
        )
        return [m.decode() for m in members]

    async def decisions(self, rec: JobRecord, state: LoopState) -> dict[str, Decision]:
        """The decisions made on the parked calls (undecided ones are absent)."""
        (key,), f = self._where(rec)
        fields = [f + decision_field(state.continuation, p.call_id) for p in state.pending]
        if not fields:
            return {}
        raw = await awaited(self.redis.hmget(key, fields))
        return {
            p.call_id: _decode_decision(value)
            for p, value in zip(state.pending, raw, strict=True)
            if value is not None
        }
