"""Job records and their event streams in Redis, changed only through atomic scripts.

A job is a hash (tenant, status, timestamps, request, result, error; `JobRecord`) plus a
stream of events whose entry ids are `0-<sequence>`, so a client's `Last-Event-ID: N` is
directly the stream position to read after. A terminal event is written in the same script
that sets the terminal status, and nothing is appended after it: the first of "completed",
"failed" and "cancelled" wins and the stream ends there. Submit lives in
`shared.admission`, the identical-request verbs in `shared.coalescing`, the scripts in
`shared/lua/job_*.lua`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from itertools import chain
from typing import cast

from redis.asyncio import Redis

from shared.admission import Admitter
from shared.budget import SPEND_TTL_S, today
from shared.coalescing import Coalescing, for_follower
from shared.events import (
    AnswerDelta,
    EventName,
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobInProgress,
    StoredEvent,
    known_answer_events,
)
from shared.jobrecord import JobRecord, usage_counts
from shared.lua import json_arg, source
from shared.queue import JOB_EXPIRES_MS, NOTIFY_MAX_LEN, enqueue_keys
from shared.redis_keys import Keys
from shared.schemas.common import rfc3339, utcnow
from shared.schemas.jobs import JobError, JobPublic, JobResult, JobStatus

BLOCK_SLICE_S = 10.0  # one XREAD BLOCK never outlasts the blocking pool's socket timeout
_CANCEL_TRIES = 5  # times a cancel re-reads followers that changed meanwhile, at most


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
        self.coalescing = Coalescing(redis, keys)
        self.submit = Admitter(
            redis, keys, self.coalescing, ttl_ms=self._ttl_ms, max_len=events_max_len
        ).submit
        self._cancel = redis.register_script(source("job_cancel"))
        self._append = redis.register_script(source("job_append"))
        self._note = redis.register_script(source("job_note"))
        self._renew_leases = redis.register_script(source("leases_renew"))

    async def get(self, job_id: str) -> JobRecord | None:
        """The record, or None when unknown or expired."""
        raw = cast(dict[str, str], await self._redis.hgetall(self._keys.job(job_id)))  # type: ignore[misc]
        return JobRecord.from_hash(raw) if raw else None

    async def get_with_ttl(self, job_id: str) -> tuple[JobRecord | None, int]:
        """The record (None when unknown or expired) and its seconds to live (< 0: none),
        in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._keys.job(job_id))
            pipe.ttl(self._keys.job(job_id))
            raw, ttl = await pipe.execute()
        return (JobRecord.from_hash(raw) if raw else None), int(ttl)

    async def append(
        self,
        job_id: str,
        *events: JobEvent,
        usage: dict[str, int] | None = None,
        ending: JobRecord | None = None,
        **fields: str,
    ) -> int:
        """Append events, setting record `fields`, all in one step. When the last event is
        terminal, the job's `ending` record names what it releases, and `usage` (increments
        of the tenant's counters of the day) is counted in that same step.

        Returns the last sequence number, 0 if the job is already terminal, -1 if it is gone.
        """
        job_key = self._keys.job(job_id)
        # an answer delta leaves the expiry alone: the job's start set it, and the record
        # outlives the longest job (RAGQ_RESULT_TTL_S > RAGQ_JOB_TIMEOUT_S)
        deltas = not fields and all(isinstance(e, AnswerDelta) for e in events)
        args = {
            "job_id": job_id,
            "ttl_ms": 0 if deltas else self._ttl_ms,
            "maxlen": self._max_len,
            "usage_ttl_s": SPEND_TTL_S,
            "events": [[e.event, e.data()] for e in events],
            "usage": usage or {},
            "fields": fields,
            "lease": bool(ending and ending.lease),
            "inflight": bool(ending and ending.inflight),
        }
        keys = [
            job_key,
            self._keys.job_events(job_id),
            self._keys.job_done(job_id),
            self._keys.usage(today(), ending.tenant) if ending else job_key,
            (ending and ending.lease) or job_key,
            (ending and ending.inflight) or job_key,
        ]
        return int(await self._append(keys=keys, args=[json_arg(args)]))

    async def start(self, job_id: str, *, owner: str = "", deaths: int = 0) -> int:
        """Mark the job `in_progress` and announce it, run by worker `owner` after `deaths`
        worker deaths (workers/jobs/attempts.py); 0 if it is already terminal."""
        return await self.append(
            job_id,
            JobInProgress(job_id=job_id),
            status="in_progress",
            started_at=rfc3339(utcnow()),
            owner=owner,
            deaths=str(deaths),
        )

    async def note(self, job_id: str, **fields: str) -> None:
        """Set record fields of a job that is not terminal (no event)."""
        await self._note(keys=[self._keys.job(job_id)], args=[*chain(*fields.items())])

    async def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        result: JobResult | None = None,
        error: JobError | None = None,
        before: Sequence[JobEvent] = (),
    ) -> JobPublic | None:
        """Make the job terminal with its terminal event, after the events `before`, in one
        step that also counts it in the tenant's usage; None if it already was (or is gone)."""
        if status not in ("completed", "failed"):
            raise ValueError(f"not a status a job finishes with: {status}")
        record = await self.get(job_id)
        if record is None or record.terminal:
            return None
        if status == "failed":
            # identical requests attached to this one share its fate; done before the
            # leader ends, so a crash in between leaves the leader to be re-run
            for follower in await self.coalescing.seal(record):
                await self.finish(follower, "failed", error=error)
        now = rfc3339(utcnow())
        fields: dict[str, str] = {"status": status, "completed_at": now}
        if status == "completed":
            fields["started_at"] = record.started_at or now
        if result is not None:
            fields["result"] = result.model_dump_json()
        if error is not None:
            fields["error"] = error.model_dump_json()
        job = record.public(**fields)
        end: JobEvent = (
            JobCompleted(job=job)
            if status == "completed"
            else JobFailed(job_id=job_id, error=error or JobError(type="internal", message=""))
        )
        seq = await self.append(
            job_id, *before, end, usage=usage_counts(job), ending=record, **fields
        )
        return job if seq > 0 else None

    async def complete_with(self, job_id: str, result: JobResult) -> JobPublic | None:
        """Complete a job whose answer is already known (cache hit, coalesced): its events
        arrive at once — citations, the whole answer as one delta, the completed job."""
        events = known_answer_events(result)
        return await self.finish(job_id, "completed", result=result, before=events)

    async def share(self, record: JobRecord, result: JobResult) -> list[JobPublic]:
        """Give a leader's answer to the identical requests attached to it meanwhile (seal,
        then complete each); the followers completed now.

        Runs before the leader completes, so if the worker dies here the re-run shares it
        again (completing a follower twice is a no-op)."""
        shared = for_follower(result)
        done = [await self.complete_with(f, shared) for f in await self.coalescing.seal(record)]
        return [job for job in done if job is not None]

    async def renew_leases(self, leases: dict[str, str], ttl_ms: int) -> None:
        """Push back the expiry of running jobs' concurrency leases (job id → lease set).

        While queued, a lease lasts as long as the queued job may; a worker shortens it to
        its lock TTL and renews it, so a SIGKILLed worker's leases lapse by themselves."""
        if leases:
            await self._renew_leases(keys=list(leases.values()), args=[ttl_ms, *leases])

    async def cancel(self, record: JobRecord) -> int:
        """Cancel a queued or running job: >0 done, 0 already terminal, -1 unknown."""
        job_id = record.id
        unused = self._keys.job(job_id)
        for _ in range(_CANCEL_TRIES):
            followers = await self.coalescing.followers(job_id)
            async with self._redis.pipeline(transaction=False) as pipe:
                for follower in followers:
                    pipe.hget(self._keys.job(follower), "queue")
                queues: list[str | None] = await pipe.execute() if followers else []
            args = {
                "job_id": job_id,
                "ttl_ms": self._ttl_ms,
                "maxlen": self._max_len,
                "data": JobCancelled(job_id=job_id).data(),
                "completed_at": rfc3339(utcnow()),
                "channel": self._keys.cancel_channel,
                "score": str(int(time.time() * 1000)),
                "expires_ms": JOB_EXPIRES_MS,
                "notify_max": NOTIFY_MAX_LEN,
                "lease": record.lease is not None,
                "inflight": record.inflight is not None,
                "leader": record.leader or "",
                "reserved": record.spend_keys is not None,
                "followers": followers,
            }
            spend = record.spend_keys or (unused, unused)
            keys = [
                unused,
                self._keys.job_events(job_id),
                *enqueue_keys(self._keys, record.queue, job_id)[:2],
                self._keys.job_done(job_id),
                record.lease or unused,
                record.inflight or unused,
                self._keys.followers(record.leader) if record.leader else unused,
                self._keys.followers(job_id),
                *spend,
            ]
            for follower, queue in zip(followers, queues, strict=True):
                keys += [self._keys.job(follower), *enqueue_keys(self._keys, queue or "", follower)]
            done = int(await self._cancel(keys=keys, args=[json_arg(args)]))
            if done != -2:
                return done
        raise RuntimeError(f"the followers of {job_id} kept changing")  # pragma: no cover

    async def wait_terminal(self, job_id: str, timeout_s: float) -> None:
        """Block until the job is terminal or `timeout_s` passes: one wake-up, not one per token."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        done = self._keys.job_done(job_id)
        while (left := deadline - loop.time()) > 0:
            block = max(1, int(min(left, BLOCK_SLICE_S) * 1000))
            if await self._blocking.xread({done: "0-0"}, count=1, block=block):
                return

    async def read_events(
        self, job_id: str, after: int, *, block_ms: int | None
    ) -> list[StoredEvent]:
        """Events with sequence > `after`; with `block_ms`, wait that long for the first one."""
        stream = self._keys.job_events(job_id)
        client = self._blocking if block_ms is not None else self._redis
        reply = await client.xread({stream: f"0-{after}"}, count=1000, block=block_ms)
        events: list[StoredEvent] = []
        for _name, entries in reply or []:
            for entry_id, fields in entries:
                seq = int(str(entry_id).rsplit("-", 1)[1])
                events.append(StoredEvent(seq, cast(EventName, fields["event"]), fields["data"]))
        return events
