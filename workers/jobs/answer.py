"""The answer job: retrieve → prompt → LLM stream → events → result (or an extractive answer).

At-least-once delivery means a job may run again after a crash. A re-run reuses the
citations already announced and skips the answer text already streamed, so clients
that concatenate `answer.delta` events still get exactly `result.answer`.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

import structlog

from shared.errors import CircuitOpen, UpstreamError, UpstreamTimeout
from shared.logging import get_logger
from shared.schemas.jobs import TERMINAL_STATUSES, AnswerJobPayload, Citation, JobResult, Usage
from workers.lifecycle import Runtime
from workers.rag.extractive import extractive_answer
from workers.rag.llm import Completion
from workers.rag.prompt import affinity_key, build_messages

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
    try:
        async with asyncio.timeout(rt.settings.job_timeout_s * 0.95):
            await _run(rt, job, ctx.get("job_try", 1))
    except asyncio.CancelledError:
        if job.job_id not in rt.cancelled:
            raise  # shutdown: arq puts the job back for another try
        log.info("job.cancelled")
    except JobStopped:
        log.info("job.stopped")
    except TimeoutError:
        log.warning("job.timed_out", timeout_s=rt.settings.job_timeout_s)
        await rt.jobs.finish(
            job.job_id, "failed", error={"type": "timeout", "message": "the job ran too long"}
        )
    except Exception as exc:
        log.exception("job.crashed")
        await rt.jobs.finish(
            job.job_id, "failed", error={"type": "internal", "message": type(exc).__name__}
        )
    finally:
        rt.running.pop(job.job_id, None)
        rt.cancelled.discard(job.job_id)
        structlog.contextvars.unbind_contextvars("job_id", "tenant", "request_id")


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
    queue_ms = max(0, int((picked_up - created) * 1000))
    log.info("job.started", attempt=job_try, queue_ms=queue_ms)
    request = job.request
    citations, streamed = (None, "") if job_try <= 1 else await _previous_attempt(rt, job.job_id)

    t0 = time.perf_counter()
    if citations is None:
        citations = await rt.retriever.retrieve(
            job.tenant, request.question, top_k=request.top_k, filters=request.filters
        )
        data = {"citations": [c.model_dump(mode="json") for c in citations]}
        if await rt.jobs.append(job.job_id, "retrieval.completed", data) <= 0:
            raise JobStopped
    retrieval_ms = int((time.perf_counter() - t0) * 1000)

    emitter = _Emitter(rt, job.job_id, streamed)
    model = request.model or rt.settings.llm_model
    completion = Completion(model=model)
    degraded_reason: str | None = None
    t1 = time.perf_counter()
    if rt.llm is None:
        degraded_reason = "no_llm_configured"
    else:
        try:
            async for delta in rt.llm.stream(
                build_messages(request.question, citations),
                completion=completion,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                affinity=affinity_key(citations),
            ):
                await emitter.emit(delta)
        except UpstreamError as exc:
            degraded_reason = _degraded_reason(exc)
            log.warning("llm.failed", reason=degraded_reason, error=exc.detail)
    if degraded_reason is not None:
        fallback = extractive_answer(request.question, citations)
        await emitter.emit(f"\n\n{fallback}" if emitter.text else fallback)
    llm_ms = int((time.perf_counter() - t1) * 1000)

    if await rt.jobs.append(job.job_id, "answer.completed", {"answer": emitter.text}) <= 0:
        raise JobStopped
    result = JobResult(
        answer=emitter.text,
        citations=citations,
        model=model if degraded_reason is None else None,
        degraded=degraded_reason is not None,
        degraded_reason=degraded_reason,
        usage=completion.usage if rt.llm is not None else Usage(),
        cost_usd=0.0,
        timings_ms={
            "queue": queue_ms,
            "retrieval": retrieval_ms,
            "llm": llm_ms,
            "total": queue_ms + int((time.perf_counter() - started) * 1000),
        },
    )
    await rt.jobs.finish(job.job_id, "completed", result=result.model_dump(mode="json"))
    log.info(
        "job.completed",
        degraded=result.degraded,
        citations=len(citations),
        total_ms=result.timings_ms["total"],
    )


def _degraded_reason(exc: UpstreamError) -> str:
    if isinstance(exc, CircuitOpen):
        return "circuit_open"
    return "llm_timeout" if isinstance(exc, UpstreamTimeout) else "llm_unavailable"


def _epoch(rfc3339_text: str) -> float:
    return datetime.fromisoformat(rfc3339_text.replace("Z", "+00:00")).timestamp()
