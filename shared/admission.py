"""Admission: a job is checked (concurrency cap, queue depth, budget), recorded, announced
and enqueued — or coalesced onto an identical running one — in one atomic step
(shared/lua/job_submit.lua); nothing is written when it is refused (docs/API.md, Errors).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, cast

from redis.asyncio import Redis

from shared.budget import SPEND_TTL_S, today
from shared.coalescing import Coalescing
from shared.events import JobCompleted, JobQueued, known_answer_events
from shared.jobrecord import JobRecord, usage_counts
from shared.lua import json_arg, source
from shared.queue import JOB_EXPIRES_MS, NOTIFY_MAX_LEN, arq_payload, enqueue_keys
from shared.redis_keys import ANSWER_JOB, DRAIN_BUCKET_S, Keys
from shared.schemas.common import rfc3339, utcnow
from shared.schemas.jobs import AnswerJobPayload, JobCreate, JobPublic, JobResult, job_links

Outcome = Literal[
    "ok",
    "coalesced",
    "cached",
    "cached_now",
    "overloaded",
    "overloaded_wait",
    "concurrency",
    "budget",
    "exists",
]
_MOVES = 5  # tries of a submit whose coalescing leader changed since it was read, at most


@dataclass(frozen=True, slots=True)
class Admission:
    """What a submit checks, atomically, before it writes anything."""

    max_depth: int = 0  # queue depth at which new jobs are shed (0 = never)
    max_wait_s: float = 0  # estimated queue wait over which new jobs are shed (0 = never)
    wait_ratio: float = 0  # ...or over this many times a job's measured time (0 = no such limit)
    fresh_ms: int = 15_000  # a worker heartbeat older than this is a dead worker's
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
    outcome: Outcome
    retry_after: int = 0
    scope: str = ""  # the exhausted budget's scope
    wait_limit_s: float = 0  # the estimated wait a job may have (overloaded_wait)


class Admitter:
    """Runs the submit script; `JobStore.submit` is this."""

    def __init__(
        self, redis: Redis, keys: Keys, coalescing: Coalescing, *, ttl_ms: int, max_len: int
    ) -> None:
        self._keys = keys
        self._coalescing = coalescing
        self._ttl_ms = ttl_ms
        self._max_len = max_len
        self._submit = redis.register_script(source("job_submit"))

    async def submit(
        self,
        *,
        job_id: str,
        tenant: str,
        request: JobCreate,
        request_id: str,
        payload_extra: dict[str, Any] | None = None,
        admission: Admission | None = None,
        answer: JobResult | None = None,
    ) -> Submitted:
        """Admit, record, announce `job.queued` and enqueue a job, in one atomic step.

        Nothing is written when admission refuses it (queue full, concurrency cap, budget).
        With `answer` (a cached one; admission `cached`) the job is recorded and completed
        with it in that same step, with the events of `known_answer_events`.
        """
        adm = admission or Admission()
        record = {
            "id": job_id,
            "tenant": tenant,
            "status": "queued",
            "created_at": rfc3339(utcnow()),
            "request": request.model_dump_json(),
            "queue": request.priority,
            "request_id": request_id,
        }
        mode = "cached" if adm.cached else "coalesce" if adm.inflight_key else "queue"
        body, score = b"", 0  # a job answered from the cache is never queued
        if mode != "cached":
            payload = AnswerJobPayload(
                job_id=job_id,
                tenant=tenant,
                request_id=request_id,
                request=request,
                **(payload_extra or {}),
            ).model_dump(mode="json")
            body, score = arq_payload(ANSWER_JOB, payload)
        args: dict[str, Any] = {
            "job_id": job_id,
            "ttl_ms": self._ttl_ms,
            "maxlen": self._max_len,
            "event": JobQueued(job_id=job_id).data(),
            "payload": body.decode(),
            "score": str(score),
            "expires_ms": JOB_EXPIRES_MS,
            "notify_max": NOTIFY_MAX_LEN,
            "mode": mode,
            "max_depth": adm.max_depth,
            "max_wait_s": adm.max_wait_s,
            "wait_ratio": adm.wait_ratio,
            "queue": request.priority,
            "fresh_ms": adm.fresh_ms,
            "bucket_s": DRAIN_BUCKET_S,
            "drain_window_s": adm.drain_window_s,
            "max_retry_after_s": adm.max_retry_after_s,
            "max_concurrent": adm.max_concurrent if adm.lease_key else 0,
            "lease_ttl_ms": adm.lease_ttl_ms,
            "reserve_nano": str(adm.reserve_nano if adm.spend_keys else 0),
            "service_cap": str(adm.caps_nano[0]),
            "tenant_cap": str(adm.caps_nano[1]),
            "spend_ttl_s": SPEND_TTL_S,
            "record": record,
        }
        job: JobPublic | None = None
        if answer is not None:
            job, args["finish"] = _finish(record, request, answer)
        unused = self._keys.job(job_id)  # stands in for keys a mode does not touch
        spend = adm.spend_keys or (unused, unused)
        keys = [
            self._keys.job(job_id),
            self._keys.job_events(job_id),
            *enqueue_keys(self._keys, request.priority, job_id),
            adm.lease_key or unused,
            *spend,
            adm.inflight_key or unused,
            self._keys.usage(today(), tenant),
            adm.pointer_key or unused,
        ]
        workers = [self._keys.workers, self._keys.job_done(job_id)]
        # the drain counters matter only to a queue with a depth or wait limit
        drains = (
            self._keys.drain_window(request.priority, time.time(), adm.drain_window_s)
            if (adm.max_depth > 0 or adm.max_wait_s > 0) and mode != "cached"
            else []
        )
        leader = ""  # most often no identical job runs: read the pointer only when moved
        for _ in range(_MOVES):
            leads = (
                [self._keys.job(leader), self._keys.followers(leader)] if leader else [unused] * 2
            )
            args["leader"] = leader
            outcome, value, *more = await self._submit(
                keys=[*keys, *leads, *workers, *drains], args=[json_arg(args)]
            )
            if outcome != "moved":
                break
            leader = await self._coalescing.leader(adm.inflight_key)
        else:  # pragma: no cover - five identical requests finishing in a row
            raise RuntimeError("the coalescing leader kept changing")
        said = cast(Outcome, str(outcome))
        if said in {"ok", "coalesced", "cached"}:
            return Submitted(job or JobRecord.from_hash(record).public(), said)
        if said == "budget":
            return Submitted(None, said, scope=str(value))
        limit = float(more[0]) if more else 0.0
        return Submitted(None, said, retry_after=int(value), wait_limit_s=limit)


def _finish(
    record: dict[str, str], request: JobCreate, answer: JobResult
) -> tuple[JobPublic, dict[str, Any]]:
    """The completed job of a submit answered from the cache, and what the script writes
    to complete it: the fields, the events (citations, the answer as one delta, the
    completed job) and the usage counts."""
    now = rfc3339(utcnow())
    fields = {
        "status": "completed",
        "started_at": now,
        "completed_at": now,
        "result": answer.model_dump_json(),
    }
    job = JobPublic(  # from the models at hand: nothing parsed back or validated again
        id=record["id"],
        status="completed",
        created_at=record["created_at"],
        started_at=now,
        completed_at=now,
        request=request,
        result=answer,
        links=job_links(record["id"]),
    )
    events = [*known_answer_events(answer), JobCompleted(job=job)]
    finish = {
        "fields": fields,
        "events": [[e.event, e.data()] for e in events],
        "usage": usage_counts(job),
    }
    return job, finish
