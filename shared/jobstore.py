"""Job records and their event streams in Redis, changed only through atomic Lua scripts.

A job is a hash (tenant, status, timestamps, request, result, error) plus a stream
of events whose entry ids are `0-<sequence>`, so a client's `Last-Event-ID: N`
is directly the stream position to read after. A terminal event is written in the
same script that sets the terminal status, and nothing is appended after it: the
first of "completed", "failed" and "cancelled" wins and the stream ends there.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, cast

from redis.asyncio import Redis

from shared.budget import RESERVE_LUA, SPEND_TTL_S, today
from shared.queue import ENQUEUE_LUA, JOB_EXPIRES_MS, arq_payload, enqueue_keys
from shared.redis_keys import ANSWER_JOB, Keys
from shared.schemas.common import rfc3339, utcnow
from shared.schemas.jobs import (
    TERMINAL_STATUSES,
    AnswerJobPayload,
    JobCreate,
    JobPublic,
    job_links,
)

BLOCK_SLICE_S = 10.0  # one XREAD BLOCK never outlasts the blocking pool's socket timeout
TERMINAL_EVENTS: frozenset[str] = frozenset({"job.completed", "job.failed", "job.cancelled"})

# Shared Lua: append one event with the next sequence number, unless the job is terminal.
_APPEND_FN = """
local function append(job, events, name, data, maxlen)
  local seq = redis.call('HINCRBY', job, 'seq', 1)
  local body
  if data == '{}' then
    body = '{"sequence_number":' .. seq .. '}'
  else
    body = '{"sequence_number":' .. seq .. ',' .. string.sub(data, 2)
  end
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '0-' .. seq, 'event', name, 'data', body)
  return seq
end
local function is_terminal(status)
  return status == 'completed' or status == 'failed' or status == 'cancelled'
end
-- one entry when the job ends: waiters block on this, not on every token; the job's
-- concurrency lease and its coalescing slot are released in the same step
local function mark_done(done, status, ttl, job)
  redis.call('XADD', done, '0-1', 'status', status)
  redis.call('PEXPIRE', done, ttl)
  redis.call('HDEL', job, 'pending_result')  -- a re-run's shortcut, needless from now on
  local id = redis.call('HGET', job, 'id')
  local lease = redis.call('HGET', job, 'lease')
  if lease then redis.call('ZREM', lease, id) end
  local inflight = redis.call('HGET', job, 'inflight')
  if inflight and redis.call('GET', inflight) == id then redis.call('DEL', inflight) end
end
"""

# Submit, with every admission check before anything is written. KEYS: 1 job, 2 events,
# 3 arq job, 4 queue, 5 notify, 6 leases, 7 service spend, 8 tenant spend, 9 inflight,
# 10 usage, 11 the request's answer pointer. ARGV: 1 ttl_ms, 2 maxlen, 3 event data,
# 4 arq payload, 5 score, 6 arq expires_ms,
# 7 mode (queue | coalesce | cached), 8 max depth (0 = none), 9 drain counter prefix,
# 10 drain window s, 11 max Retry-After, 12 max concurrent (0 = none), 13 lease ttl ms,
# 14 reserve nano (0 = none), 15 service cap, 16 tenant cap, 17 spend ttl s, 18 key prefix,
# then field/value pairs of the record.
# Returns {'ok'|'coalesced'|'cached', seq} or {'overloaded'|'concurrency', retry_after}
# or {'budget', scope} or {'exists', 0} or {'cached_now', 0}.
_SUBMIT = (
    _APPEND_FN
    + ENQUEUE_LUA
    + RESERVE_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', 0} end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local mode = ARGV[7]
local max_conc = tonumber(ARGV[12])
if mode ~= 'cached' and max_conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now_ms)
  if redis.call('ZCARD', KEYS[6]) >= max_conc then return {'concurrency', 1} end
end
local leader = false
if mode == 'coalesce' then
  local running = redis.call('GET', KEYS[9])
  if running then
    local status = redis.call('HGET', ARGV[18] .. ':job:' .. running, 'status')
    if status == 'queued' or status == 'in_progress' then leader = running end
  end
end
-- an identical request finished between the caller's cache lookup and now: look again
if mode == 'coalesce' and not leader and redis.call('EXISTS', KEYS[11]) == 1 then
  return {'cached_now', 0}
end
local reserve_nano = tonumber(ARGV[14])
if mode ~= 'cached' and not leader then
  local max_depth = tonumber(ARGV[8])
  local depth = redis.call('ZCARD', KEYS[4])
  if max_depth > 0 and depth >= max_depth then
    -- Retry-After: the time the queue takes to drain at the rate of the last window
    local window = tonumber(ARGV[10])
    local bucket = math.floor(tonumber(now[1]) / 5)
    local drained = 0
    for b = bucket - math.floor(window / 5), bucket do
      drained = drained + tonumber(redis.call('GET', ARGV[9] .. ':' .. b) or '0')
    end
    local retry = tonumber(ARGV[11])
    if drained > 0 then
      retry = math.max(1, math.min(retry, math.ceil(depth * window / drained)))
    end
    return {'overloaded', retry}
  end
  if reserve_nano > 0 then
    local outcome = reserve(KEYS[7], KEYS[8], reserve_nano, ARGV[15], ARGV[16], ARGV[17])
    if outcome ~= 'ok' then return {'budget', outcome} end
  end
end
local fields = {}
for i = 19, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'seq', 0, unpack(fields))
local id = string.sub(KEYS[3], 9)
if leader then
  local followers = ARGV[18] .. ':job:' .. leader .. ':followers'
  redis.call('SADD', followers, id)
  redis.call('PEXPIRE', followers, ARGV[1])
  redis.call('HSET', KEYS[1], 'leader', leader, 'payload', ARGV[4])
elseif mode ~= 'cached' then
  enqueue(KEYS[3], KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[6])
  if mode == 'coalesce' then
    redis.call('SET', KEYS[9], id, 'PX', ARGV[6])
    redis.call('HSET', KEYS[1], 'inflight', KEYS[9])
  end
  if reserve_nano > 0 then
    redis.call('HSET', KEYS[1], 'reserved_nano', reserve_nano, 'spend_keys',
      KEYS[7] .. ' ' .. KEYS[8])
  end
end
if mode ~= 'cached' and max_conc > 0 then
  redis.call('ZADD', KEYS[6], now_ms + tonumber(ARGV[13]), id)
  redis.call('PEXPIRE', KEYS[6], ARGV[13])
  redis.call('HSET', KEYS[1], 'lease', KEYS[6])
end
local seq = append(KEYS[1], KEYS[2], 'job.queued', ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[10], 'requests', 1)
redis.call('EXPIRE', KEYS[10], ARGV[17])
if leader then return {'coalesced', seq} end
if mode == 'cached' then return {'cached', seq} end
return {'ok', seq}
"""
)

# KEYS: job, events, done, usage. ARGV: 1 ttl_ms, 2 maxlen, 3 usage ttl s, 4 number of
# events n, then n name/data pairs, then the number of usage counters m, m counter/increment
# pairs, then record fields to set. Appends the events unless the job is terminal. When the
# last one is terminal (job.completed, job.failed) the job is marked done and the tenant's
# usage counters move in the same step, so a crash can neither leave a finished job
# uncounted nor split a completion's events (answer.completed, job.completed) in two.
# Returns the last new sequence number; 0 when the job is already terminal; -1 when gone.
_APPEND = (
    _APPEND_FN
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if is_terminal(status) then return 0 end
local n = tonumber(ARGV[4])
local at = 5 + 2 * n
local m = tonumber(ARGV[at])
local first_field = at + 1 + 2 * m
if #ARGV >= first_field then
  local fields = {}
  for i = first_field, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(fields))
end
local seq = 0
for i = 0, n - 1 do seq = append(KEYS[1], KEYS[2], ARGV[5 + 2 * i], ARGV[6 + 2 * i], ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
local last = ARGV[3 + 2 * n]
if last == 'job.completed' or last == 'job.failed' then
  mark_done(KEYS[3], string.sub(last, 5), ARGV[1], KEYS[1])
  for i = 0, m - 1 do redis.call('HINCRBY', KEYS[4], ARGV[at + 1 + 2 * i], ARGV[at + 2 + 2 * i]) end
  if m > 0 then redis.call('EXPIRE', KEYS[4], ARGV[3]) end
end
return seq
"""
)


# KEYS: job, events, arq job, queue, done.
# ARGV: ttl_ms, maxlen, data, completed_at, channel, job id, key prefix, score, arq expires_ms.
# A queued job also leaves arq's queue; a running one is stopped by its worker on the message.
_CANCEL = (
    _APPEND_FN
    + ENQUEUE_LUA
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if is_terminal(status) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'completed_at', ARGV[4])
local seq = append(KEYS[1], KEYS[2], 'job.cancelled', ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
if status == 'queued' then
  redis.call('ZREM', KEYS[4], ARGV[6])
  redis.call('DEL', KEYS[3])
  -- it never ran: give back the budget it reserved at submit (a running job's worker does)
  local reserved = redis.call('HGET', KEYS[1], 'reserved_nano')
  if reserved then
    for spend in string.gmatch(redis.call('HGET', KEYS[1], 'spend_keys'), '%S+') do
      redis.call('DECRBY', spend, reserved)
    end
    redis.call('HDEL', KEYS[1], 'reserved_nano')
  end
end
local leader = redis.call('HGET', KEYS[1], 'leader')
if leader then redis.call('SREM', ARGV[7] .. ':job:' .. leader .. ':followers', ARGV[6]) end
mark_done(KEYS[5], 'cancelled', ARGV[1], KEYS[1])
-- a cancelled leader's followers were not cancelled: they queue as jobs of their own
local followers = ARGV[7] .. ':job:' .. ARGV[6] .. ':followers'
for _, f in ipairs(redis.call('SMEMBERS', followers)) do
  local job = ARGV[7] .. ':job:' .. f
  if redis.call('HGET', job, 'status') == 'queued' then
    local queue = ARGV[7] .. ':queue:' .. redis.call('HGET', job, 'queue')
    enqueue('arq:job:' .. f, queue, queue .. ':notify', redis.call('HGET', job, 'payload'),
            ARGV[8], ARGV[9])
    redis.call('HDEL', job, 'leader', 'payload')
  end
end
redis.call('DEL', followers)
redis.call('PUBLISH', ARGV[5], ARGV[6])
return seq
"""
)

# KEYS: job. ARGV: field/value pairs, set unless the job is gone or terminal.
_NOTE = (
    _APPEND_FN
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status and not is_terminal(status) then redis.call('HSET', KEYS[1], unpack(ARGV)) end
"""
)


# KEYS: inflight, followers. ARGV: leader job id.
_SEAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('SMEMBERS', KEYS[2])
"""


# KEYS: lease sets, ARGV: ttl_ms, then one job id per key. Only leases still held are renewed.
_RENEW_LEASES = """
local now = redis.call('TIME')
local expiry = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', expiry, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
"""


@dataclass(frozen=True, slots=True)
class Admission:
    """What a submit checks, atomically, before it writes anything."""

    max_depth: int = 0  # queue depth at which new jobs are shed (0 = never)
    drain_window_s: int = 60
    max_retry_after_s: int = 300
    lease_key: str | None = None  # the API key's lease set, when it has a concurrency cap
    max_concurrent: int = 0
    lease_ttl_ms: int = JOB_EXPIRES_MS  # a worker shortens it to its lock TTL while it runs
    spend_keys: tuple[str, str] | None = None  # reserve at submit (policy `reject`)
    reserve_nano: int = 0
    caps_nano: tuple[int, int] = (0, -1)
    inflight_key: str | None = None  # coalesce onto a running identical request
    pointer_key: str | None = None  # ...unless its answer got cached meanwhile
    cached: bool = False  # the answer is already known: record the job, do not queue it


@dataclass(frozen=True, slots=True)
class Submitted:
    """The outcome of a submit: the job, or why it was refused."""

    job: JobPublic | None
    outcome: str  # ok, coalesced, cached, cached_now, overloaded, concurrency, budget, exists
    retry_after: int = 0
    scope: str = ""  # the exhausted budget's scope


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a job's stream."""

    sequence: int
    name: str
    data: str  # JSON object text that includes "sequence_number"

    @property
    def terminal(self) -> bool:
        """True for the event that ends the stream."""
        return self.name in TERMINAL_EVENTS


def new_job_id() -> str:
    """An unguessable job id (128 random bits)."""
    return "job_" + secrets.token_hex(16)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class JobStore:
    """Creates, reads and advances job records; every write keeps the record and stream TTL."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        ttl_s: int,
        events_max_len: int,
        blocking: Redis | None = None,
    ) -> None:
        self._redis = redis
        self._blocking = blocking or redis  # pool for XREAD BLOCK
        self._keys = keys
        self._ttl_ms = ttl_s * 1000
        self._max_len = events_max_len
        self._submit = redis.register_script(_SUBMIT)
        self._cancel = redis.register_script(_CANCEL)
        self._append = redis.register_script(_APPEND)
        self._seal = redis.register_script(_SEAL)
        self._note = redis.register_script(_NOTE)
        self._renew_leases = redis.register_script(_RENEW_LEASES)

    async def submit(
        self,
        *,
        job_id: str,
        tenant: str,
        request: JobCreate,
        request_id: str,
        payload_extra: dict[str, Any] | None = None,
        admission: Admission | None = None,
    ) -> Submitted:
        """Admit, record, announce `job.queued` and enqueue a job, in one atomic step.

        Nothing is written when admission refuses it (queue full, concurrency cap, budget).
        """
        adm = admission or Admission()
        created_at = rfc3339(utcnow())
        record = {
            "id": job_id,
            "tenant": tenant,
            "status": "queued",
            "created_at": created_at,
            "request": request.model_dump_json(),
            "queue": request.priority,
            "request_id": request_id,
        }
        payload = AnswerJobPayload(
            job_id=job_id,
            tenant=tenant,
            request_id=request_id,
            request=request,
            **(payload_extra or {}),
        ).model_dump(mode="json")
        body, score = arq_payload(ANSWER_JOB, payload)
        data = _dumps({"job_id": job_id, "status": "queued"})
        mode = "cached" if adm.cached else "coalesce" if adm.inflight_key else "queue"
        unused = self._keys.job(job_id)  # stands in for keys a mode does not touch
        spend = adm.spend_keys or (unused, unused)
        args: list[Any] = [
            self._ttl_ms,
            self._max_len,
            data,
            body,
            score,
            JOB_EXPIRES_MS,
            mode,
            adm.max_depth,
            self._keys.drain(request.priority),
            adm.drain_window_s,
            adm.max_retry_after_s,
            adm.max_concurrent if adm.lease_key else 0,
            adm.lease_ttl_ms,
            adm.reserve_nano if adm.spend_keys else 0,
            *adm.caps_nano,
            SPEND_TTL_S,
            self._keys.prefix,
        ]
        for name, value in record.items():
            args += [name, value]
        keys = [
            *self._job_keys(job_id),
            *enqueue_keys(self._keys, request.priority, job_id),
            adm.lease_key or unused,
            *spend,
            adm.inflight_key or unused,
            self._keys.usage(today(), tenant),
            adm.pointer_key or unused,
        ]
        outcome, value = await self._submit(keys=keys, args=args)
        outcome = str(outcome)
        if outcome in {"ok", "coalesced", "cached"}:
            return Submitted(to_public(record), outcome)
        if outcome == "budget":
            return Submitted(None, outcome, scope=str(value))
        return Submitted(None, outcome, retry_after=int(value))

    async def get(self, job_id: str) -> dict[str, str] | None:
        """The raw record, or None when unknown or expired."""
        raw = cast(dict[str, str], await self._redis.hgetall(self._keys.job(job_id)))  # type: ignore[misc]
        return raw or None

    async def append(
        self,
        job_id: str,
        name: str,
        data: dict[str, Any],
        *,
        before: Sequence[tuple[str, dict[str, Any]]] = (),
        usage: tuple[str, dict[str, int]] | None = None,
        **fields: str,
    ) -> int:
        """Append an event, after the events `before`, setting record `fields`, all in one
        step. When the event is terminal, `usage` (the tenant's usage key and increments)
        is counted in that same step.

        Returns its sequence number, 0 if the job is already terminal, -1 if it is gone.
        """
        events = [*before, (name, data)]
        usage_key, counts = usage or (self._keys.job(job_id), {})
        args: list[Any] = [self._ttl_ms, self._max_len, SPEND_TTL_S, len(events)]
        for event_name, event_data in events:
            args += [event_name, _dumps(event_data)]
        args.append(len(counts))
        for counter, increment in counts.items():
            args += [counter, increment]
        for key, value in fields.items():
            args += [key, value]
        keys = [*self._job_keys(job_id), self._keys.job_done(job_id), usage_key]
        return int(await self._append(keys=keys, args=args))

    async def start(self, job_id: str) -> int:
        """Mark the job `in_progress` and announce it; 0 if it is already terminal."""
        return await self.append(
            job_id,
            "job.in_progress",
            {"job_id": job_id, "status": "in_progress"},
            status="in_progress",
            started_at=rfc3339(utcnow()),
        )

    async def note(self, job_id: str, **fields: str) -> None:
        """Set record fields of a job that is not terminal (no event)."""
        await self._note(keys=[self._keys.job(job_id)], args=[*chain(*fields.items())])

    async def finish(
        self,
        job_id: str,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, str] | None = None,
        before: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> JobPublic | None:
        """Make the job terminal with its terminal event, after the events `before`, in one
        step that also counts it in the tenant's usage; None if it already was (or is gone)."""
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"not a terminal status: {status}")
        record = await self.get(job_id)
        if record is None or record["status"] in TERMINAL_STATUSES:
            return None
        if status == "failed" and record.get("inflight"):
            # identical requests attached to this one share its fate; done before the
            # leader ends, so a crash in between leaves the leader to be re-run
            for follower in await self.seal(record["inflight"], job_id):
                await self.finish(follower, "failed", error=error)
        now = rfc3339(utcnow())
        fields: dict[str, str] = {"status": status, "completed_at": now}
        if status == "completed":
            fields["started_at"] = record.get("started_at") or now
        if result is not None:
            fields["result"] = _dumps(result)
        if error is not None:
            fields["error"] = _dumps(error)
        job = to_public({**record, **fields})
        if status == "completed":
            event: dict[str, Any] = job.model_dump(mode="json")
        elif status == "failed":
            event = {"job_id": job_id, "error": error}
        else:
            event = {"job_id": job_id}
        usage = (self._keys.usage(today(), record["tenant"]), _usage_counts(job))
        seq = await self.append(
            job_id, f"job.{status}", event, before=before, usage=usage, **fields
        )
        return job if seq > 0 else None

    async def complete_with(self, job_id: str, result: dict[str, Any]) -> JobPublic | None:
        """Complete a job whose answer is already known (cache hit, coalesced): its events
        arrive at once — citations, the whole answer as one delta, the completed job."""
        events: list[tuple[str, dict[str, Any]]] = [
            ("retrieval.completed", {"citations": result["citations"]})
        ]
        if result["answer"]:
            events.append(("answer.delta", {"delta": result["answer"]}))
        events.append(("answer.completed", {"answer": result["answer"]}))
        return await self.finish(job_id, "completed", result=result, before=events)

    async def renew_leases(self, leases: dict[str, str], ttl_ms: int) -> None:
        """Push back the expiry of running jobs' concurrency leases (job id → lease set).

        While queued, a lease lasts as long as the queued job may; a worker shortens it to
        its lock TTL and renews it, so a SIGKILLed worker's leases lapse by themselves."""
        if leases:
            await self._renew_leases(keys=list(leases.values()), args=[ttl_ms, *leases])

    async def seal(self, inflight_key: str, leader: str) -> list[str]:
        """Stop new requests attaching to `leader`; the ones attached so far."""
        members = await self._seal(keys=[inflight_key, self._keys.followers(leader)], args=[leader])
        return sorted(str(m) for m in members)

    async def cancel(self, job_id: str, queue: str) -> int:
        """Cancel a queued or running job: >0 done, 0 already terminal, -1 unknown."""
        keys = [
            *self._job_keys(job_id),
            *enqueue_keys(self._keys, queue, job_id)[:2],
            self._keys.job_done(job_id),
        ]
        args: list[Any] = [
            self._ttl_ms,
            self._max_len,
            _dumps({"job_id": job_id}),
            rfc3339(utcnow()),
            self._keys.cancel_channel,
            job_id,
            self._keys.prefix,
            int(time.time() * 1000),
            JOB_EXPIRES_MS,
        ]
        return int(await self._cancel(keys=keys, args=args))

    async def wait_terminal(self, job_id: str, timeout_s: float) -> None:
        """Block until the job is terminal or `timeout_s` passes: one wake-up, not one per token."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        done = self._keys.job_done(job_id)
        while (left := deadline - loop.time()) > 0:
            block = max(1, int(min(left, BLOCK_SLICE_S) * 1000))
            if await self._blocking.xread({done: "0-0"}, count=1, block=block):
                return

    async def read_events(self, job_id: str, after: int, *, block_ms: int | None) -> list[Event]:
        """Events with sequence > `after`; with `block_ms`, wait that long for the first one."""
        stream = self._keys.job_events(job_id)
        client = self._blocking if block_ms is not None else self._redis
        reply = await client.xread({stream: f"0-{after}"}, count=1000, block=block_ms)
        events: list[Event] = []
        for _name, entries in reply or []:
            for entry_id, fields in entries:
                seq = int(str(entry_id).rsplit("-", 1)[1])
                events.append(Event(seq, fields["event"], fields["data"]))
        return events

    def _job_keys(self, job_id: str) -> list[str]:
        return [self._keys.job(job_id), self._keys.job_events(job_id)]


def _usage_counts(job: JobPublic) -> dict[str, int]:
    """What a finished job adds to its tenant's usage counters of the day."""
    counts: dict[str, int] = {job.status: 1}
    if job.result is not None:
        counts["prompt_tokens"] = job.result.usage.prompt_tokens
        counts["completion_tokens"] = job.result.usage.completion_tokens
        counts["cache_hits"] = int(job.result.cached)
    return counts


def to_public(record: dict[str, str]) -> JobPublic:
    """The job object of docs/API.md from a stored record."""
    job_id = record["id"]
    return JobPublic.model_validate(
        {
            "id": job_id,
            "status": record["status"],
            "created_at": record["created_at"],
            "started_at": record.get("started_at"),
            "completed_at": record.get("completed_at"),
            "request": json.loads(record["request"]),
            "result": json.loads(record["result"]) if record.get("result") else None,
            "error": json.loads(record["error"]) if record.get("error") else None,
            "links": job_links(job_id),
        }
    )
