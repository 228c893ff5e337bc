"""Jobs: submit, read (with long poll), cancel, stream events, and submit-and-wait."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import ApiKeyDep, ClientsDep, TenantDep
from shared.answercache import cacheable, request_digest
from shared.apikeys import ApiKey
from shared.budget import nano, seconds_to_midnight, today
from shared.errors import (
    BudgetExhausted,
    Conflict,
    InvalidInput,
    NotFound,
    Overloaded,
    RagqError,
    RateLimited,
    Timeout,
)
from shared.jobstore import Admission, Submitted, new_job_id, to_public
from shared.metrics import ADMISSION_REJECTIONS, CACHE_REQUESTS, JOBS_FINISHED, JOBS_SUBMITTED
from shared.prompting import SYSTEM_PROMPT
from shared.schemas.jobs import (
    TERMINAL_STATUSES,
    JobCreate,
    JobPublic,
    RagCreate,
    RagResponse,
    Usage,
)
from shared.tiers import llm_target

router = APIRouter(prefix="/v1", tags=["jobs"])
log = structlog.get_logger("api.jobs")

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]


async def _load(clients: ClientsDep, tenant: str, job_id: str) -> dict[str, str]:
    record = await clients.jobs.get(job_id)
    if record is None or record.get("tenant") != tenant:
        raise NotFound(f"No job {job_id!r}.")
    return record


async def _submit(
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
            return to_public(record), False
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
        model = body.model or target.model
        prompt_chars = (
            len(SYSTEM_PROMPT) + len(body.question) + body.top_k * (settings.chunk_max_chars + 200)
        )
        worst = clients.prices.worst_case(model, prompt_chars, body.max_tokens)
        admission = replace(
            admission,
            spend_keys=clients.budgets.counters(today(), tenant),
            reserve_nano=nano(worst),
            caps_nano=clients.budgets.caps(key.daily_budget_usd),
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
    )
    if submitted.outcome == "cached_now":
        return None
    if submitted.job is None:
        raise await _refused(clients, tenant, body, submitted)
    job = submitted.job
    if hit is not None:
        result = {
            **hit,
            "cached": True,
            "usage": Usage().model_dump(),
            "cost_usd": 0.0,
            "timings_ms": {"queue": 0, "retrieval": 0, "llm": 0, "total": 0},
        }
        job = await clients.jobs.complete_with(job_id, result) or job
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


def _accepted(job: JobPublic) -> JSONResponse:
    return JSONResponse(
        job.model_dump(mode="json"), status_code=202, headers={"Location": job.links.self}
    )


@router.post("/jobs", status_code=202, response_model=JobPublic)
async def submit_job(
    request: Request,
    body: JobCreate,
    clients: ClientsDep,
    key: ApiKeyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Submit a RAG question as a job."""
    job, _ = await _submit(request, clients, key, body, idempotency_key)
    return _accepted(job)


@router.get(
    "/jobs/{job_id}",
    response_model=JobPublic,
    responses={304: {"description": "Not Modified: `If-None-Match` holds the ETag"}},
)
async def get_job(
    job_id: str,
    clients: ClientsDep,
    tenant: TenantDep,
    wait: Annotated[float, Query(ge=0, le=30)] = 0,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
) -> Response:
    """Read a job; `wait` holds the request until it is terminal or the seconds pass."""
    record = await _load(clients, tenant, job_id)
    if wait > 0 and record["status"] not in TERMINAL_STATUSES:
        await clients.jobs.wait_terminal(job_id, wait)
        record = await _load(clients, tenant, job_id)
    response = JSONResponse(to_public(record).model_dump(mode="json"))
    if record["status"] not in TERMINAL_STATUSES:
        response.headers["Cache-Control"] = "no-store"
        return response
    # a terminal job never changes until it expires: cacheable by the client and by the
    # edge, which keys on the credential (docs/API.md, GET /v1/jobs/{id}; deploy/nginx/)
    ttl = await clients.redis.ttl(clients.keys.job(job_id))  # seconds left; < 0: none
    max_age = ttl if ttl > 0 else clients.settings.result_ttl_s
    etag = f'"{hashlib.sha256(bytes(response.body)).hexdigest()[:32]}"'
    headers = {
        "Cache-Control": f"private, max-age={max_age}, immutable",
        "ETag": etag,
        "Vary": "Authorization, X-API-Key",
    }
    sent = {tag.strip().removeprefix("W/") for tag in (if_none_match or "").split(",")}
    if etag in sent or "*" in sent:
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return response


@router.post("/jobs/{job_id}/cancel", response_model=JobPublic)
async def cancel_job(job_id: str, clients: ClientsDep, tenant: TenantDep) -> JobPublic:
    """Cancel a queued or running job."""
    record = await _load(clients, tenant, job_id)
    if (
        record["status"] in TERMINAL_STATUSES
        or await clients.jobs.cancel(job_id, record["queue"]) == 0
    ):
        raise Conflict(f"Job {job_id!r} has already finished.")
    if record["status"] == "queued":  # no worker will ever see it end
        JOBS_FINISHED.labels(queue=record["queue"], status="cancelled").inc()
    log.info("job.cancel_requested", job_id=job_id)
    return to_public(await _load(clients, tenant, job_id))


# a Redis stream id part is an unsigned 64-bit integer: events are `0-<sequence>`
MAX_EVENT_ID = 2**64 - 1
_EVENT_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only: str.isdigit() also takes "²"
_QUERY_LOC = ("query", "starting_after")
_HEADER_LOC = ("header", "Last-Event-ID")


def _bad_event_id(loc: tuple[str, str], detail: str) -> InvalidInput:
    return InvalidInput(detail, extra={"errors": [{"loc": list(loc), "msg": detail}]})


def _start_after(
    last_event_id: str | None, starting_after: int | None
) -> tuple[int, tuple[str, str]]:
    """The sequence number to resume after, and where it came from (for error locations)."""
    if starting_after is not None:
        return starting_after, _QUERY_LOC
    if last_event_id is None:
        return 0, _QUERY_LOC
    text = last_event_id.strip(" \t")
    if not _EVENT_ID.fullmatch(text) or int(text) > MAX_EVENT_ID:
        raise _bad_event_id(
            _HEADER_LOC, f"Last-Event-ID must be an event sequence number (0 to {MAX_EVENT_ID})."
        )
    return int(text), _HEADER_LOC


def _event_stream(clients: ClientsDep, job_id: str, after: int) -> EventSourceResponse:
    settings = clients.settings
    wait_ms = int(settings.sse_ping_s * 1000)

    async def events() -> AsyncIterator[ServerSentEvent]:
        position = after
        block_ms: int | None = None  # the first read never waits: a finished job ends at once
        try:
            while True:
                batch = await clients.jobs.read_events(job_id, position, block_ms=block_ms)
                block_ms = wait_ms
                if not batch:
                    record = await clients.jobs.get(job_id)
                    if record is None:
                        return  # the job expired while we waited
                    if record["status"] in TERMINAL_STATUSES:
                        # its terminal event was written with the status: read once more,
                        # in case both landed after the read above; then nothing can follow
                        batch = await clients.jobs.read_events(job_id, position, block_ms=None)
                        if not batch:
                            return
                for event in batch:
                    yield ServerSentEvent(data=event.data, event=event.name, id=str(event.sequence))
                    position = event.sequence
                    if event.terminal:
                        return
        except RedisError as exc:  # the response has started: end it, the client resumes
            log.warning("sse.redis_unavailable", job_id=job_id, after=position, error=str(exc))

    return EventSourceResponse(
        events(),
        ping=settings.sse_ping_s,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def job_events(
    job_id: str,
    clients: ClientsDep,
    tenant: TenantDep,
    last_event_id: LastEventId = None,
    starting_after: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID)] = None,
) -> EventSourceResponse:
    """Stream a job's events: replay from the start (or a resume point), then follow live."""
    record = await _load(clients, tenant, job_id)
    after, where = _start_after(last_event_id, starting_after)
    written = int(record.get("seq", "0"))  # events so far; a terminal job's last is its end
    if after > written and record["status"] not in TERMINAL_STATUSES:
        raise _bad_event_id(
            where, f"Job {job_id} has {written} events so far; there is no event {after} yet."
        )
    return _event_stream(clients, job_id, after)


@router.post(
    "/rag",
    response_model=RagResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def rag(
    request: Request,
    body: RagCreate,
    clients: ClientsDep,
    key: ApiKeyDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Submit a question and wait for the answer (or stream it with `stream: true`)."""
    tenant = key.tenant
    job, _ = await _submit(request, clients, key, body.job(), idempotency_key)
    if body.stream:
        return _event_stream(clients, job.id, 0)
    await clients.jobs.wait_terminal(job.id, body.timeout)
    done = to_public(await _load(clients, tenant, job.id))
    extra: dict[str, Any] = {"job_id": job.id}
    if done.status == "completed" and done.result is not None:
        answer = RagResponse.model_validate({"job_id": job.id, **done.result.model_dump()})
        return JSONResponse(answer.model_dump(mode="json"))
    if done.status == "failed":
        message = done.error.message if done.error else "the job failed"
        raise Conflict(f"Job {job.id} failed: {message}", extra=extra)
    if done.status == "cancelled":
        raise Conflict(f"Job {job.id} was cancelled.", extra=extra)
    raise Timeout(
        f"Job {job.id} is still running after {body.timeout:g} s; poll {job.links.self}.",
        extra=extra,
    )
