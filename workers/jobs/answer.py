"""The answer job: retrieve → prompt → LLM stream → events → result (or an extractive answer).

At-least-once delivery means a job may run again after a crash. A re-run reuses the
citations already announced and skips the answer text already streamed, so clients
that concatenate `answer.delta` events still get exactly `result.answer`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from shared.answercache import prompt_digest
from shared.budget import Reservation, today
from shared.clients import REDIS_UNAVAILABLE
from shared.errors import CircuitOpen, UpstreamError, UpstreamTimeout
from shared.logging import get_logger
from shared.metrics import (
    BUDGET_SPEND,
    CACHE_REQUESTS,
    DEGRADED_ANSWERS,
    JOB_STAGE_SECONDS,
    JOBS_FINISHED,
    JOBS_IN_PROGRESS,
    LLM_CALLS,
    LLM_COST,
    LLM_LATENCY,
    LLM_TOKENS,
    LLM_TTFT,
)
from shared.schemas.jobs import TERMINAL_STATUSES, AnswerJobPayload, Citation, JobResult, Usage
from workers.lifecycle import Runtime
from workers.rag.extractive import extractive_answer
from workers.rag.prompt import affinity_key, build_messages
from workers.rag.replies import Completion
from workers.runtime import interrupted

log = get_logger("workers.answer")


class JobStopped(Exception):
    """The job became terminal (cancelled) or expired under us: stop quietly."""


class _Emitter:
    """Appends answer deltas, skipping text a previous attempt already streamed."""

    def __init__(self, rt: Runtime, job_id: str, already: str) -> None:
        self._rt = rt
        self._job_id = job_id
        self._already = already
        self._offset = 0  # characters of this attempt's text covered by `already`
        self.text = already

    async def emit(self, delta: str) -> None:
        if self._offset < len(self._already):
            overlap = self._already[self._offset : self._offset + len(delta)]
            if delta.startswith(overlap):
                self._offset += len(overlap)
                delta = delta[len(overlap) :]
            else:  # this attempt diverged from what was streamed; continue after it
                self._offset = len(self._already)
            if not delta:
                return
        seq = await self._rt.jobs.append(self._job_id, "answer.delta", {"delta": delta})
        if seq <= 0:  # cancelled or expired meanwhile: stop producing
            raise JobStopped
        self.text += delta


async def answer(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    """Answer one question (arq job function)."""
    rt: Runtime = ctx["runtime"]
    job = AnswerJobPayload.model_validate(payload)
    structlog.contextvars.bind_contextvars(
        request_id=job.request_id, tenant=job.tenant, job_id=job.job_id
    )
    task = asyncio.current_task()
    assert task is not None
    rt.running[job.job_id] = task
    queue = job.request.priority
    in_progress = JOBS_IN_PROGRESS.labels(queue=queue)
    in_progress.inc()
    job_try = int(ctx.get("job_try", 1))
    rerun = False  # back to the queue for another try, with its reservation
    try:
        try:
            async with asyncio.timeout(rt.settings.job_timeout_s * 0.95):
                await _run(rt, job, job_try)
        except asyncio.CancelledError:
            if job.job_id not in rt.cancelled:
                rerun = True
                raise  # shutdown: arq puts the job back for another try
            log.info("job.cancelled")
            JOBS_FINISHED.labels(queue=queue, status="cancelled").inc()
        except JobStopped:  # its events refused us: it was cancelled (or expired) meanwhile
            log.info("job.stopped")
            JOBS_FINISHED.labels(queue=queue, status="cancelled").inc()
        except REDIS_UNAVAILABLE:
            raise  # not the job's fault: handled below, never recorded as a failure
        except TimeoutError:
            log.warning("job.timed_out", timeout_s=rt.settings.job_timeout_s)
            await _fail(rt, job, "timeout", "the job ran too long")
        except Exception as exc:
            log.exception("job.crashed")
            await _fail(rt, job, "internal", type(exc).__name__)
    except REDIS_UNAVAILABLE as exc:
        # Redis went away under the job: it stays queued (arq removes it only when it
        # finishes) and runs again once Redis answers, resuming what it already streamed
        rerun = True
        raise interrupted(exc, job_try) from exc
    finally:
        in_progress.dec()
        if not rerun and rt.settings.budget_policy == "reject":  # submit-time reservations
            try:
                await rt.refund_unused(job.job_id)
            except REDIS_UNAVAILABLE as exc:
                log.warning("budget.refund_failed", error=str(exc))
        rt.running.pop(job.job_id, None)
        rt.leases.pop(job.job_id, None)
        rt.cancelled.discard(job.job_id)
        structlog.contextvars.unbind_contextvars("job_id", "tenant", "request_id")


async def _fail(rt: Runtime, job: AnswerJobPayload, kind: str, message: str) -> None:
    """Record the job as failed (unless it is terminal already)."""
    if await rt.jobs.finish(job.job_id, "failed", error={"type": kind, "message": message}):
        JOBS_FINISHED.labels(queue=job.request.priority, status="failed").inc()


async def _previous_attempt(rt: Runtime, job_id: str) -> tuple[list[Citation] | None, str]:
    """Citations and answer text that an earlier attempt of this job already announced."""
    citations: list[Citation] | None = None
    text: list[str] = []
    after = 0
    while events := await rt.jobs.read_events(job_id, after, block_ms=None):
        for event in events:
            if event.name == "retrieval.completed":
                raw = json.loads(event.data)["citations"]
                citations = [Citation.model_validate(c) for c in raw]
            elif event.name == "answer.delta":
                text.append(json.loads(event.data)["delta"])
        after = events[-1].sequence
    return citations, "".join(text)


@dataclass(slots=True)
class Generation:
    """How the answer text came about."""

    model: str | None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    degraded_reason: str | None = None
    cached: bool = False


async def _run(rt: Runtime, job: AnswerJobPayload, job_try: int) -> None:
    picked_up = time.time()
    record = await rt.jobs.get(job.job_id)
    if record is None or record["status"] in TERMINAL_STATUSES:
        log.info("job.skipped", status=record["status"] if record else "expired")
        return
    started = time.perf_counter()
    created = _epoch(record["created_at"])
    if await rt.jobs.start(job.job_id) <= 0:
        return
    if record.get("lease"):  # from now on the lease lives only while this worker renews it
        rt.leases[job.job_id] = record["lease"]
        await rt.renew_leases([job.job_id])
    queue_ms = max(0, int((picked_up - created) * 1000))
    log.info("job.started", attempt=job_try, queue_ms=queue_ms)
    request = job.request
    log.debug("job.question", question=request.question)  # user text: debug level only
    # read before retrieval: an answer cached under it was built from this corpus or older
    corpus = await rt.answers.corpus_version(job.tenant) if job.request_digest else "0"
    citations, streamed = (None, "") if job_try <= 1 else await _previous_attempt(rt, job.job_id)
    emitter = _Emitter(rt, job.job_id, streamed)
    if pending := record.get("pending_result"):
        # an earlier attempt generated (and paid for) the whole answer, then died: finish it
        result = JobResult.model_validate_json(pending)
        await emitter.emit(result.answer)  # nothing, unless that attempt died mid-way
        result.answer = emitter.text
        log.info("job.resumed", answered=True)
    else:
        result = await _answer(rt, job, record, citations, emitter, corpus)
        total_ms = queue_ms + int((time.perf_counter() - started) * 1000)
        result.timings_ms = {"queue": queue_ms, **result.timings_ms, "total": total_ms}
        # a re-run after this point finishes the job without calling the LLM again
        await rt.jobs.note(job.job_id, pending_result=result.model_dump_json())
    await _share(rt, record, result)
    completed = await rt.jobs.finish(
        job.job_id,
        "completed",
        result=result.model_dump(mode="json"),
        before=[("answer.completed", {"answer": result.answer})],
    )
    if completed is not None:
        queue = request.priority
        JOBS_FINISHED.labels(queue=queue, status="completed").inc()
        for name, stage in _STAGES.items():
            JOB_STAGE_SECONDS.labels(queue=queue, stage=stage).observe(
                result.timings_ms[name] / 1000
            )
    log.info(
        "job.completed",
        degraded=result.degraded,
        cached=result.cached,
        cost_usd=result.cost_usd,
        citations=len(result.citations),
        total_ms=result.timings_ms["total"],
    )


async def _answer(
    rt: Runtime,
    job: AnswerJobPayload,
    record: dict[str, str],
    citations: list[Citation] | None,
    emitter: _Emitter,
    corpus: str,
) -> JobResult:
    """Retrieve (unless an earlier attempt did), generate and stream the answer; the
    result's queue and total timings are the caller's."""
    request = job.request
    t0 = time.perf_counter()
    if citations is None:
        citations = await rt.retriever.retrieve(
            job.tenant, request.question, top_k=request.top_k, filters=request.filters
        )
        data = {"citations": [c.model_dump(mode="json") for c in citations]}
        if await rt.jobs.append(job.job_id, "retrieval.completed", data) <= 0:
            raise JobStopped
    retrieval_ms = int((time.perf_counter() - t0) * 1000)

    t1 = time.perf_counter()
    gen = await _generate(rt, job, record, citations, emitter, corpus)
    if gen.degraded_reason is not None:
        DEGRADED_ANSWERS.labels(reason=gen.degraded_reason).inc()
        fallback = extractive_answer(request.question, citations)
        await emitter.emit(f"\n\n{fallback}" if emitter.text else fallback)
    llm_ms = int((time.perf_counter() - t1) * 1000)
    return JobResult(
        answer=emitter.text,
        citations=citations,
        model=gen.model,
        cached=gen.cached,
        degraded=gen.degraded_reason is not None,
        degraded_reason=gen.degraded_reason,
        usage=gen.usage,
        cost_usd=gen.cost_usd,
        timings_ms={"retrieval": retrieval_ms, "llm": llm_ms},
    )


async def _generate(
    rt: Runtime,
    job: AnswerJobPayload,
    record: dict[str, str],
    citations: list[Citation],
    emitter: _Emitter,
    corpus: str,
) -> Generation:
    """Stream the LLM's answer into the job, unless the cache, the budget or the breaker
    decide otherwise; the cost is reserved before the call and settled after it."""
    request = job.request
    client = rt.llm_for(job.tier)  # the key's tier: its own endpoints, model and breakers
    if client is None:
        return _not_called(Generation(None, degraded_reason="no_llm_configured"))
    model = request.model or client.default_model
    messages = build_messages(request.question, citations)
    prompt_key: str | None = None
    if job.request_digest is not None and rt.settings.answer_cache_ttl_s > 0:
        docs = sorted({c.document_id for c in citations})
        versions = await rt.documents.visible_versions(job.tenant, docs)
        chunks = [(c.chunk_id, versions.get(c.document_id, "")) for c in citations]
        prompt_key = prompt_digest(
            model,
            messages,
            chunks,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
        )
        hit = await rt.answers.get(job.tenant, corpus, prompt_key)
        CACHE_REQUESTS.labels(layer="answer", result="hit" if hit else "miss").inc()
        if hit is not None:
            await emitter.emit(hit["answer"])
            return _not_called(Generation(hit["model"], cached=True))

    prompt_chars = sum(len(m["content"]) for m in messages)
    reservation = _reserved_at_submit(record, job.tenant)
    job_key = rt.keys.job(job.job_id) if reservation is not None else None
    if reservation is None:
        got = await rt.budgets.reserve(
            job.tenant,
            rt.prices.worst_case(model, prompt_chars, request.max_tokens),
            job.tenant_budget_usd,
        )
        if isinstance(got, str) and rt.fallback is not None:  # policy fallback_model
            client, model = rt.fallback, rt.fallback.default_model
            got = await rt.budgets.reserve(
                job.tenant,
                rt.prices.worst_case(model, prompt_chars, request.max_tokens),
                job.tenant_budget_usd,
            )
        if isinstance(got, str):
            log.warning("budget.degraded", scope=got)
            return _not_called(Generation(None, degraded_reason="budget_exhausted"), model)
        reservation = got

    completion = Completion(model=model)
    gen = Generation(model)
    produced = len(emitter.text)
    # the endpoint's side of it: a call we stop (cancel) or whose text we fail to store is "ok"
    status: str | None = "ok"
    called = time.perf_counter()
    try:
        async for delta in client.stream(
            messages,
            completion=completion,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            affinity=affinity_key(citations),
        ):
            await emitter.emit(delta)
    except UpstreamError as exc:
        gen = Generation(None, degraded_reason=_degraded_reason(exc))
        status = _call_status(exc)
        log.warning("llm.failed", reason=gen.degraded_reason, error=exc.detail)
    finally:
        gen.usage = completion.usage
        gen.cost_usd = _cost(rt, model, completion.usage, prompt_chars, emitter, produced)
        _called(model, status, completion, time.perf_counter() - called, gen)
        # settled even when the job is cancelled mid-stream: what was generated is paid for
        spent = await asyncio.shield(rt.budgets.settle(reservation, gen.cost_usd, job_key=job_key))
        LLM_COST.labels(model=model).inc(gen.cost_usd)
        if reservation.day == today():
            BUDGET_SPEND.labels(scope="service").set(spent)
    if gen.degraded_reason is None and prompt_key is not None and job.request_digest:
        answer = {
            "answer": emitter.text,
            "citations": [c.model_dump(mode="json") for c in citations],
            "model": model,
        }
        await rt.answers.put(
            job.tenant, corpus, prompt=prompt_key, request=job.request_digest, answer=answer
        )
    return gen


def _reserved_at_submit(record: dict[str, str], tenant: str) -> Reservation | None:
    """The reservation the API made at submit (policy `reject`), if it made one."""
    amount = int(record.get("reserved_nano") or 0)
    if amount <= 0:
        return None
    return Reservation(day=record["created_at"][:10], tenant=tenant, amount_nano=amount)


def _cost(
    rt: Runtime, model: str, usage: Usage, prompt_chars: int, emitter: _Emitter, produced: int
) -> float:
    """The call's cost from the usage the LLM reported; estimated when a broken stream
    reported none but text was generated."""
    if usage.total_tokens:
        return rt.prices.cost(model, usage.prompt_tokens, usage.completion_tokens)
    generated = len(emitter.text) - produced
    if generated <= 0:
        return 0.0
    return rt.prices.cost(
        model, rt.prices.prompt_tokens(prompt_chars), rt.prices.prompt_tokens(generated)
    )


async def _share(rt: Runtime, record: dict[str, str], result: JobResult) -> None:
    """Give the answer to the identical requests that attached to this job meanwhile.

    Runs before this job completes, so if the worker dies here the re-run shares it again
    (completing a follower twice is a no-op)."""
    if not record.get("inflight"):
        return
    shared = result.model_copy(
        update={
            "cached": True,
            "usage": Usage(),
            "cost_usd": 0.0,
            "timings_ms": dict.fromkeys(result.timings_ms, 0),
        }
    ).model_dump(mode="json")
    followers = await rt.jobs.seal(record["inflight"], record["id"])
    for follower in followers:
        done = await rt.jobs.complete_with(follower, shared)
        if done is not None:
            JOBS_FINISHED.labels(queue=done.request.priority, status="completed").inc()
    if followers:
        log.info("job.shared", followers=len(followers))


_STAGES = {"queue": "queue_wait", "retrieval": "retrieval", "llm": "llm", "total": "total"}


def _called(
    model: str, status: str | None, completion: Completion, latency_s: float, gen: Generation
) -> None:
    """Metrics and the `llm.call` line of a call that was made (`status` None: the breaker
    refused it before any network call, so it counts as no call)."""
    if status is None:
        _log_call(model, "not_called", gen)
        return
    ttft_s = completion.first_token_s
    LLM_CALLS.labels(model=model, status=status).inc()
    LLM_LATENCY.labels(model=model).observe(latency_s)
    if ttft_s is not None:
        LLM_TTFT.labels(model=model).observe(ttft_s)
    LLM_TOKENS.labels(model=model, direction="prompt").inc(gen.usage.prompt_tokens)
    LLM_TOKENS.labels(model=model, direction="completion").inc(gen.usage.completion_tokens)
    _log_call(model, status, gen, latency_s, ttft_s)


def _not_called(gen: Generation, model: str | None = None) -> Generation:
    """Log the `llm.call` line of an answer that needed no call (cached, or degraded
    before calling; `model` the one it would have called) and return it."""
    _log_call(model or gen.model, "not_called", gen)
    return gen


def _log_call(
    model: str | None,
    status: str,
    gen: Generation,
    latency_s: float = 0.0,
    ttft_s: float | None = None,
) -> None:
    log.info(
        "llm.call",
        model=model,
        status=status,
        prompt_tokens=gen.usage.prompt_tokens,
        completion_tokens=gen.usage.completion_tokens,
        latency_ms=round(latency_s * 1000, 1),
        ttft_ms=None if ttft_s is None else round(ttft_s * 1000, 1),
        cost_usd=gen.cost_usd,
        cached=gen.cached,
        degraded=gen.degraded_reason is not None,
        degraded_reason=gen.degraded_reason,
    )


def _call_status(exc: UpstreamError) -> str | None:
    """The `ragq_llm_calls_total` status of a failed call; None when no call was made."""
    if isinstance(exc, CircuitOpen):
        return None
    return "timeout" if isinstance(exc, UpstreamTimeout) else "error"


def _degraded_reason(exc: UpstreamError) -> str:
    if isinstance(exc, CircuitOpen):
        return "circuit_open"
    return "llm_timeout" if isinstance(exc, UpstreamTimeout) else "llm_unavailable"


def _epoch(rfc3339_text: str) -> float:
    return datetime.fromisoformat(rfc3339_text.replace("Z", "+00:00")).timestamp()
