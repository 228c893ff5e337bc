"""The answer job: retrieve → prompt → LLM stream → events → result (or an extractive answer).

At-least-once delivery means a job may run again after a crash. A re-run reuses the
citations already announced and skips the answer text already streamed, so clients
that concatenate `answer.delta` events still get exactly `result.answer`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import structlog

from shared.clients import REDIS_UNAVAILABLE
from shared.events import AnswerCompleted
from shared.jobrecord import JobRecord
from shared.logging import get_logger
from shared.metrics import JOB_STAGE_SECONDS, JOBS_FINISHED, JOBS_IN_PROGRESS
from shared.schemas.jobs import AnswerJobPayload, Citation, JobError, JobResult
from workers.jobs.attempts import deaths_so_far, poison_message
from workers.jobs.generate import answer_question
from workers.jobs.resume import Emitter, JobStopped, previous_attempt
from workers.lifecycle import Runtime
from workers.outage import interrupted

log = get_logger("workers.answer")


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
                await _hand_back(rt, job.job_id)
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
                await rt.budgets.refund(await rt.jobs.get(job.job_id))
            except REDIS_UNAVAILABLE as exc:
                log.warning("budget.refund_failed", error=str(exc))
        rt.running.pop(job.job_id, None)
        rt.leases.pop(job.job_id, None)
        rt.cancelled.discard(job.job_id)
        structlog.contextvars.unbind_contextvars("job_id", "tenant", "request_id")


async def _hand_back(rt: Runtime, job_id: str) -> None:
    """An orderly interruption (this worker's shutdown): the job has no owner until its
    next run, which therefore counts no worker death (workers/jobs/attempts.py)."""
    try:
        await rt.jobs.note(job_id, owner="")
    except REDIS_UNAVAILABLE as exc:
        log.warning("job.hand_back_failed", error=str(exc))


async def _fail(rt: Runtime, job: AnswerJobPayload, kind: str, message: str) -> None:
    """Record the job as failed (unless it is terminal already)."""
    if await rt.jobs.finish(job.job_id, "failed", error=JobError(type=kind, message=message)):
        JOBS_FINISHED.labels(queue=job.request.priority, status="failed").inc()


async def _cache_corpus(rt: Runtime, job: AnswerJobPayload) -> str:
    """The corpus version the answer cache is keyed by ("0" when the job does not use it)."""
    return await rt.answers.corpus_version(job.tenant) if job.request_digest else "0"


async def _run(rt: Runtime, job: AnswerJobPayload, job_try: int) -> None:
    picked_up = time.time()
    # the corpus version is read before retrieval (here, with the record: one round trip):
    # an answer cached under it was built from this corpus or older
    record, corpus = await asyncio.gather(rt.jobs.get(job.job_id), _cache_corpus(rt, job))
    if record is None or record.terminal:
        log.info("job.skipped", status=record.status if record else "expired")
        return
    started = time.perf_counter()
    created = _epoch(record.created_at)
    deaths = await deaths_so_far(rt, record.owner, record.deaths) if job_try > 1 else 0
    if deaths >= rt.settings.max_worker_deaths:
        log.error("job.abandoned", deaths=deaths)
        await _fail(rt, job, "abandoned", poison_message(deaths))
        return
    if record.status == "in_progress":  # a re-run: clients saw it start once already
        await rt.jobs.note(job.job_id, owner=rt.worker_id, deaths=str(deaths))
    elif await rt.jobs.start(job.job_id, owner=rt.worker_id, deaths=deaths) <= 0:
        return
    if record.lease:  # from now on the lease lives only while this worker renews it
        rt.leases[job.job_id] = record.lease
        await rt.renew_leases([job.job_id])
    queue_ms = max(0, int((picked_up - created) * 1000))
    log.info("job.started", attempt=job_try, queue_ms=queue_ms)
    request = job.request
    log.debug("job.question", question=request.question)  # user text: debug level only
    announced, streamed = (None, "") if job_try <= 1 else await previous_attempt(rt, job.job_id)
    emitter = Emitter(rt, job.job_id, streamed, flush_s=rt.settings.stream_flush_ms / 1000)
    try:
        result = await _answer(rt, job, record, announced, emitter, corpus, queue_ms, started)
        await _share(rt, record, result)
        held = await emitter.pending()  # written with the completion: one write, not two
    finally:
        emitter.close()
    completed = await rt.jobs.finish(
        job.job_id,
        "completed",
        result=result,
        before=[*held, AnswerCompleted(answer=result.answer)],
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
    record: JobRecord,
    announced: tuple[list[Citation], str | None] | None,
    emitter: Emitter,
    corpus: str,
    queue_ms: int,
    started: float,
) -> JobResult:
    """The job's result: the answer an earlier attempt left (it died before completing the
    job), or a new one, noted in the record before the job completes."""
    if pending := record.pending_result:
        # an earlier attempt generated (and paid for) the whole answer, then died: finish it
        result = JobResult.model_validate_json(pending)
        await emitter.emit(result.answer)  # nothing, unless that attempt died mid-way
        result.answer = emitter.text
        log.info("job.resumed", answered=True)
    else:
        result = await answer_question(rt, job, record, announced, emitter, corpus)
        total_ms = queue_ms + int((time.perf_counter() - started) * 1000)
        result.timings_ms = {"queue": queue_ms, **result.timings_ms, "total": total_ms}
        # a re-run after this point finishes the job without calling the LLM again
        await rt.jobs.note(job.job_id, pending_result=result.model_dump_json())
    return result


async def _share(rt: Runtime, record: JobRecord, result: JobResult) -> None:
    """Give the answer to the identical requests that attached to this job meanwhile."""
    followers = await rt.jobs.share(record, result)
    for done in followers:
        JOBS_FINISHED.labels(queue=done.request.priority, status="completed").inc()
    if followers:
        log.info("job.shared", followers=len(followers))


_STAGES = {"queue": "queue_wait", "retrieval": "retrieval", "llm": "llm", "total": "total"}


def _epoch(rfc3339_text: str) -> float:
    return datetime.fromisoformat(rfc3339_text.replace("Z", "+00:00")).timestamp()
