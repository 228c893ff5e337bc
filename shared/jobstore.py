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
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

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
-- one entry when the job ends: waiters block on this, not on every token
local function mark_done(done, status, ttl)
  redis.call('XADD', done, '0-1', 'status', status)
  redis.call('PEXPIRE', done, ttl)
end
"""

# KEYS: job, events, arq job, queue, notify.
# ARGV: ttl_ms, maxlen, event data, arq payload, score, arq expires_ms, then field/value pairs.
_SUBMIT = (
    _APPEND_FN
    + ENQUEUE_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'seq', 0, unpack(fields))
local seq = append(KEYS[1], KEYS[2], 'job.queued', ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
enqueue(KEYS[3], KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[6])
return seq
"""
)

# KEYS: job, events, done. ARGV: ttl_ms, maxlen, event name, data, then fields to set.
# Returns the new sequence number; 0 when the job is already terminal; -1 when it is gone.
_APPEND = (
    _APPEND_FN
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if is_terminal(status) then return 0 end
if #ARGV > 4 then
  local fields = {}
  for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(fields))
end
local seq = append(KEYS[1], KEYS[2], ARGV[3], ARGV[4], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
if ARGV[3] == 'job.completed' or ARGV[3] == 'job.failed' then
  mark_done(KEYS[3], string.sub(ARGV[3], 5), ARGV[1])
end
return seq
"""
)


# KEYS: job, events, arq job, queue, done.
# ARGV: ttl_ms, maxlen, data, completed_at, channel, job id.
# A queued job also leaves arq's queue; a running one is stopped by its worker on the message.
_CANCEL = (
    _APPEND_FN
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
end
mark_done(KEYS[5], 'cancelled', ARGV[1])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return seq
"""
)


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

    async def submit(
        self, *, job_id: str, tenant: str, request: JobCreate, request_id: str
    ) -> JobPublic | None:
        """Record a new job, announce `job.queued` and enqueue it, in one atomic step.

        Returns the queued job, or None if the id already exists.
        """
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
            job_id=job_id, tenant=tenant, request_id=request_id, request=request
        ).model_dump(mode="json")
        body, score = arq_payload(ANSWER_JOB, payload)
        data = _dumps({"job_id": job_id, "status": "queued"})
        args: list[Any] = [self._ttl_ms, self._max_len, data, body, score, JOB_EXPIRES_MS]
        for name, value in record.items():
            args += [name, value]
        keys = self._job_keys(job_id) + enqueue_keys(self._keys, request.priority, job_id)
        seq = await self._submit(keys=keys, args=args)
        return to_public(record) if seq else None

    async def get(self, job_id: str) -> dict[str, str] | None:
        """The raw record, or None when unknown or expired."""
        raw = cast(dict[str, str], await self._redis.hgetall(self._keys.job(job_id)))  # type: ignore[misc]
        return raw or None

    async def append(self, job_id: str, name: str, data: dict[str, Any], **fields: str) -> int:
        """Append a non-terminal event (optionally setting record fields in the same step).

        Returns its sequence number, 0 if the job is already terminal, -1 if it is gone.
        """
        args: list[Any] = [self._ttl_ms, self._max_len, name, _dumps(data)]
        for key, value in fields.items():
            args += [key, value]
        keys = [*self._job_keys(job_id), self._keys.job_done(job_id)]
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

    async def finish(
        self,
        job_id: str,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, str] | None = None,
    ) -> JobPublic | None:
        """Make the job terminal with its terminal event; None if it already was (or is gone)."""
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"not a terminal status: {status}")
        record = await self.get(job_id)
        if record is None or record["status"] in TERMINAL_STATUSES:
            return None
        record = {**record, "status": status, "completed_at": rfc3339(utcnow())}
        fields: dict[str, str] = {"status": status, "completed_at": record["completed_at"]}
        if result is not None:
            record["result"] = fields["result"] = _dumps(result)
        if error is not None:
            record["error"] = fields["error"] = _dumps(error)
        job = to_public(record)
        if status == "completed":
            event: dict[str, Any] = job.model_dump(mode="json")
        elif status == "failed":
            event = {"job_id": job_id, "error": error}
        else:
            event = {"job_id": job_id}
        seq = await self.append(job_id, f"job.{status}", event, **fields)
        return job if seq > 0 else None

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
