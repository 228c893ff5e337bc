"""Submitting a job: the tier's model, `Idempotency-Key`, the answer cache, then admission
(docs/API.md, `POST /v1/jobs` and Errors). The routes in api/routes/jobs.py call `submit`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import structlog
from fastapi import Request

from api.deps import ClientsDep
from shared.admission import Admission, Submitted
from shared.answercache import cacheable, request_digest
from shared.apikeys import ApiKey
from shared.budget import estimate, seconds_to_midnight, today
from shared.errors import (
    BudgetExhausted,
    Conflict,
    InvalidInput,
    NotFound,
    Overloaded,
    RagqError,
    RateLimited,
)
from shared.jobrecord import new_job_id
from shared.metrics import ADMISSION_REJECTIONS, CACHE_REQUESTS, JOBS_FINISHED, JOBS_SUBMITTED
from shared.schemas.jobs import JobCreate, JobPublic, JobResult, Usage
from shared.tiers import llm_target
from shared.workerliveness import FRESH_BEATS

log = structlog.get_logger("api.jobs")
_NO_USAGE = Usage().model_dump()


async def submit(
    request: Request,
    clients: ClientsDep,
    key: ApiKey,
    body: JobCreate,
    idempotency_key: str | None,
) -> tuple[JobPublic, bool]:
    """Submit a job, honouring `Idempotency-Key`; returns the job and whether it is new."""
    settings = clients.settings
    tenant = key.tenant
    target = llm_target(settings, key.tier)
    if not target.allows(body.model):
        raise InvalidInput(
            f"model {body.model!r} is not served to this key's tier; choose one of "
            f"{sorted(target.models)}",
            extra={"errors": [{"loc": ["body", "model"], "msg": "unknown model"}]},
        )
    job_id = new_job_id()
    claim: str | None = None
    if idempotency_key is not None:
        fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        claim = clients.keys.idempotency(tenant, idempotency_key)
        mine = json.dumps({"fingerprint": fingerprint, "job_id": job_id})
        claimed = await clients.redis.set(claim, mine, nx=True, ex=settings.idempotency_ttl_s)
        if not claimed:
            earlier = json.loads(await clients.redis.get(claim) or mine)
            if earlier["fingerprint"] != fingerprint:
                raise Conflict("This Idempotency-Key was used with a different request body.")
            record = await clients.jobs.get(earlier["job_id"])
            if record is None:
                raise NotFound("The job of this Idempotency-Key has expired.")
            return record.public(), False
    structlog.contextvars.bind_contextvars(job_id=job_id)
    try:
        job = await _admit(request, clients, key, body, job_id)
    except RagqError:
        if claim is not None:  # a refused request may be retried with the same key
            await clients.redis.delete(claim)
        raise
    return job, True


async def _admit(
    request: Request, clients: ClientsDep, key: ApiKey, body: JobCreate, job_id: str
) -> JobPublic:
    """Cache lookup, then admission and enqueue in one atomic step (docs/API.md, Errors)."""
    settings = clients.settings
    model = body.model or llm_target(settings, key.tier).model  # tiers never share answers
    resolved = body.model_copy(update={"model": model})
    digest = request_digest(resolved, settings) if cacheable(body, settings) else None
    for _ in range(2):  # a second pass only when an identical request just got cached
        job = await _admit_once(request, clients, key, body, job_id, digest)
        if job is not None:
            JOBS_SUBMITTED.labels(queue=body.priority).inc()
            return job
    raise AssertionError("a cached answer vanished between two lookups")  # pragma: no cover


async def _admit_once(
    request: Request,
    clients: ClientsDep,
    key: ApiKey,
    body: JobCreate,
    job_id: str,
    digest: str | None,
) -> JobPublic | None:
    settings = clients.settings
    tenant = key.tenant
    corpus, hit = "0", None
    if digest is not None:
        corpus, hit = await clients.answers.lookup_request(tenant, digest)
        CACHE_REQUESTS.labels(layer="answer", result="hit" if hit else "miss").inc()
    max_concurrent = key.max_concurrent or settings.default_max_concurrent
    admission = Admission(
        max_depth=settings.max_queue_depth,
        max_wait_s=settings.max_queue_wait_s,
        wait_ratio=settings.max_queue_wait_ratio,
        fresh_ms=int(FRESH_BEATS * settings.heartbeat_s * 1000),
        drain_window_s=settings.drain_window_s,
        max_retry_after_s=settings.max_retry_after_s,
        lease_key=clients.keys.leases(key.key_id) if max_concurrent else None,
        max_concurrent=max_concurrent,
        inflight_key=clients.keys.inflight(tenant, corpus, digest) if digest else None,
        pointer_key=clients.keys.answer_pointer(tenant, corpus, digest) if digest else None,
        cached=hit is not None,
    )
    target = llm_target(settings, key.tier)
    if settings.budget_policy == "reject" and target.base_urls and hit is None:
        # reserve the worst case now, so concurrent submits cannot overshoot the budget
        worst = estimate(clients.prices, body.model or target.model, body, settings.chunk_max_chars)
        terms = clients.budgets.terms(tenant, worst, key.daily_budget_usd)
        admission = replace(
            admission,
            spend_keys=terms.spend_keys,
            reserve_nano=terms.reserve_nano,
            caps_nano=terms.caps_nano,
        )
    cached: JobResult | None = None
    if hit is not None:
        cached = JobResult.model_validate(
            {
                **hit,
                "cached": True,
                "usage": _NO_USAGE,
                "cost_usd": 0.0,
                "timings_ms": {"queue": 0, "retrieval": 0, "llm": 0, "total": 0},
            }
        )
    submitted = await clients.jobs.submit(
        job_id=job_id,
        tenant=tenant,
        request=body,
        request_id=request.state.request_id,
        payload_extra={
            "tenant_budget_usd": key.daily_budget_usd,
            "request_digest": digest,
            "tier": key.tier,
        },
        admission=admission,
        answer=cached,  # recorded and completed in one step
    )
    if submitted.outcome == "cached_now":
        return None
    if submitted.job is None:
        raise await _refused(clients, tenant, body, submitted)
    job = submitted.job
    if cached is not None:
        JOBS_FINISHED.labels(queue=body.priority, status="completed").inc()
    elif submitted.outcome == "coalesced":
        CACHE_REQUESTS.labels(layer="coalesced", result="hit").inc()
    log.info("job.submitted", queue=body.priority, admitted=submitted.outcome)
    return job


async def _refused(
    clients: ClientsDep, tenant: str, body: JobCreate, submitted: Submitted
) -> RagqError:
    """The error for a refused submit (nothing was written)."""
    if submitted.outcome == "overloaded":
        ADMISSION_REJECTIONS.labels(reason="overloaded").inc()
        return Overloaded(
            f"The {body.priority} queue is full; retry in {submitted.retry_after} s.",
            retry_after=submitted.retry_after,
        )
    if submitted.outcome == "overloaded_wait":
        ADMISSION_REJECTIONS.labels(reason="overloaded").inc()
        return Overloaded(
            f"A job queued now on the {body.priority} queue would wait longer than"
            f" {submitted.wait_limit_s:g} s to start (RAGQ_MAX_QUEUE_WAIT_S, or"
            " RAGQ_MAX_QUEUE_WAIT_RATIO times the time a job takes, if lower);"
            f" retry in {submitted.retry_after} s.",
            retry_after=submitted.retry_after,
        )
    if submitted.outcome == "concurrency":
        ADMISSION_REJECTIONS.labels(reason="concurrency").inc()
        return RateLimited(
            "This key has as many unfinished jobs as it may; retry when one ends.",
            retry_after=submitted.retry_after,
        )
    if submitted.outcome != "budget":  # "exists": a 128-bit random id was already taken
        raise RuntimeError(f"unexpected submit outcome {submitted.outcome!r}")
    ADMISSION_REJECTIONS.labels(reason="budget").inc()
    await clients.budgets.exhausted(today(), submitted.scope, tenant)
    whose = "the service's" if submitted.scope == "service" else "this tenant's"
    return BudgetExhausted(
        f"Today's spend budget ({whose}) is exhausted.", retry_after=seconds_to_midnight()
    )
