"""An answer from retrieval and generation: the follow-up made to stand alone (condense),
the citations, then the LLM's text streamed into the job — unless the answer cache, the
budget or the breaker decide otherwise (then an extractive answer). The cost is reserved
before each call and settled after it.

The LLM's text streams through a citation check (workers/rag/citecheck.py): markers that
cite no given passage never reach a delta. Under `RAGQ_UNGROUNDED_POLICY=extractive` the
text is held back until it cites a passage (or opens as a refusal); an answer that never
does is dropped for the extractive answer (`ungrounded`).

The LLM's stream must end by a deadline, `LLM_SHARE` of the job's timeout after the answer
started: a stream whose every token comes within the read timeout but whose whole does not
come in time is stopped there and the answer degrades (`llm_timeout`), leaving the job the
time to finish instead of failing at its own timeout."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from shared.answercache import prompt_digest
from shared.budget import today
from shared.errors import UpstreamError, UpstreamTimeout
from shared.events import RetrievalCompleted
from shared.jobrecord import JobRecord
from shared.logging import get_logger
from shared.metrics import (
    ANSWER_GROUNDING,
    BUDGET_SPEND,
    CACHE_REQUESTS,
    CITATION_MARKERS_REMOVED,
    DEGRADED_ANSWERS,
    LLM_COST,
)
from shared.schemas.jobs import AnswerJobPayload, Citation, JobResult, Usage
from workers.jobs.calls import Generation, call_status, called, degraded_reason, not_called
from workers.jobs.condense import Condensed, condense
from workers.jobs.resume import Emitter, JobStopped
from workers.lifecycle import Runtime
from workers.rag.attribution import attribute
from workers.rag.citecheck import AnswerGate, CitationFilter, grounding
from workers.rag.extractive import extractive_answer
from workers.rag.prompt import affinity_key, build_messages
from workers.rag.replies import Completion

log = get_logger("workers.answer")
# of the job's timeout; the job's own is 0.95 of it (workers/jobs/answer.py), and the rest
# is for the extractive answer and the few Redis writes that finish the job
LLM_SHARE = 0.85
GROUNDED_LABELS = {True: "true", False: "false", None: "none"}


async def answer_question(
    rt: Runtime,
    job: AnswerJobPayload,
    record: JobRecord,
    announced: tuple[list[Citation], str | None] | None,
    emitter: Emitter,
    corpus: str,
) -> JobResult:
    """Condense and retrieve (unless an earlier attempt `announced` its citations and the
    question it retrieved by), generate and stream the answer; the result's queue and total
    timings are the caller's (condensation counts as retrieval time)."""
    request = job.request
    t0 = time.perf_counter()
    deadline = asyncio.get_running_loop().time() + rt.settings.job_timeout_s * LLM_SHARE
    condensed = Condensed(request.question)
    versions: dict[str, str] | None = None  # the cited documents' versions, when retrieved
    if announced is None:
        condensed = await condense(rt, job, record)
        query = condensed.question
        citations, versions = await rt.retriever.retrieve_versioned(
            job.tenant, query, top_k=request.top_k, filters=request.filters
        )
        retrieved = RetrievalCompleted(citations=citations, query=query)
        if await rt.jobs.append(job.job_id, retrieved) <= 0:
            raise JobStopped
    else:
        citations, query = announced[0], announced[1] or request.question
    retrieval_ms = int((time.perf_counter() - t0) * 1000)

    t1 = time.perf_counter()
    gen = await _generate(rt, job, record, query, (citations, versions), emitter, corpus, deadline)
    valid = [c.index for c in citations]
    removed = list(gen.removed_markers)
    if gen.degraded_reason is not None:
        DEGRADED_ANSWERS.labels(reason=gen.degraded_reason).inc()
        checked = CitationFilter(valid)  # a chunk's own "[3]" is no citation either
        fallback = checked.feed(extractive_answer(query, citations)) + checked.finish()
        removed += checked.removed
        await emitter.emit(f"\n\n{fallback}" if emitter.text else fallback)
    if not gen.cached:
        CITATION_MARKERS_REMOVED.inc(len(removed))
    llm_ms = int((time.perf_counter() - t1) * 1000)
    return JobResult(
        answer=emitter.text,
        citations=citations,
        model=gen.model,
        cached=gen.cached,
        degraded=gen.degraded_reason is not None,
        degraded_reason=gen.degraded_reason,
        grounded=grounding(emitter.text, valid),
        removed_markers=removed,
        added_markers=gen.added_markers,
        usage=_plus(gen.usage, condensed.usage),
        cost_usd=gen.cost_usd + condensed.cost_usd,
        timings_ms={"retrieval": retrieval_ms, "llm": llm_ms},
    )


def _plus(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        total_tokens=a.total_tokens + b.total_tokens,
    )


async def _generate(
    rt: Runtime,
    job: AnswerJobPayload,
    record: JobRecord,
    question: str,
    cited: tuple[list[Citation], dict[str, str] | None],
    emitter: Emitter,
    corpus: str,
    deadline: float,
) -> Generation:
    """`cited`: the citations and their documents' versions (None for citations an earlier
    attempt announced: then they are read)."""
    request = job.request
    citations, versions = cited
    client = rt.llm_for(job.tier)  # the key's tier: its own endpoints, model and breakers
    if client is None:
        return not_called(Generation(None, degraded_reason="no_llm_configured"))
    model = request.model or client.default_model
    messages = build_messages(question, citations)
    prompt_key: str | None = None
    if job.request_digest is not None and rt.settings.answer_cache_ttl_s > 0:
        if versions is None:
            docs = sorted({c.document_id for c in citations})
            versions = await rt.documents.visible_versions(job.tenant, docs, cached=True)
        chunks = [(c.chunk_id, versions.get(c.document_id, "")) for c in citations]
        prompt_key = prompt_digest(
            model,
            messages,
            chunks,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            ungrounded_policy=rt.settings.ungrounded_policy,
        )
        hit = await rt.answers.get(job.tenant, corpus, prompt_key)
        CACHE_REQUESTS.labels(layer="answer", result="hit" if hit else "miss").inc()
        if hit is not None:
            await emitter.emit(hit["answer"])
            added = list(hit.get("added_markers", []))
            return not_called(Generation(hit["model"], cached=True, added_markers=added))

    prompt_chars = sum(len(m["content"]) for m in messages)
    reservation = rt.budgets.held(record)  # made at submit (policy `reject`)
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
            return not_called(Generation(None, degraded_reason="budget_exhausted"), model)
        reservation = got

    completion = Completion(model=model)
    gen = Generation(model)
    gate = AnswerGate(
        [c.index for c in citations], hold=rt.settings.ungrounded_policy == "extractive"
    )
    generated = 0  # characters the LLM sent, streamed or held back
    # the endpoint's side of it: a call we stop (cancel) or whose text we fail to store is "ok"
    status: str | None = "ok"
    called_at = time.perf_counter()
    deltas = client.stream(
        messages,
        completion=completion,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        affinity=affinity_key(citations),
    )
    try:
        async with contextlib.aclosing(deltas):
            # the deadline bounds the wait for each delta, never a write of one half done
            while (delta := await _next_delta(deltas, deadline)) is not None:
                generated += len(delta)
                await _emit(emitter, gate.feed(delta))
    except UpstreamError as exc:
        gen = Generation(None, degraded_reason=degraded_reason(exc))
        status = call_status(exc)
        log.warning("llm.failed", reason=gen.degraded_reason, error=exc.detail)
    finally:
        gen.usage = completion.usage
        gen.cost_usd = _cost(rt, model, completion.usage, prompt_chars, generated)
        called(model, status, completion, time.perf_counter() - called_at, gen)
        # settled even when the job is cancelled mid-stream: what was generated is paid for
        spent = await asyncio.shield(rt.budgets.settle(reservation, gen.cost_usd))
        LLM_COST.labels(model=model).inc(gen.cost_usd)
        if reservation.day == today():
            BUDGET_SPEND.labels(scope="service").set(spent)
    # what the filter still holds: plain text, streamed unless held back as ungrounded
    await _emit(emitter, gate.finish())
    gen.removed_markers = gate.filter.removed
    if gen.degraded_reason is None:
        label = GROUNDED_LABELS[gate.grounded]
        if gate.grounded is False and (found := attribute(gate.text, citations)):
            await _emit(emitter, gate.attribute(found))
            gen.added_markers, label = [f"[{i}]" for i in found], "attributed"
        ANSWER_GROUNDING.labels(grounded=label).inc()
        if not gate.released:
            gen.degraded_reason = "ungrounded"
            log.info("answer.ungrounded", chars=len(gate.text), removed=len(gate.filter.removed))
    if gen.degraded_reason is None and prompt_key is not None and job.request_digest:
        answer = {
            "answer": emitter.text,
            "citations": [c.model_dump(mode="json") for c in citations],
            "model": model,
            "grounded": grounding(emitter.text, [c.index for c in citations]),
            "added_markers": gen.added_markers,
        }
        # a follow-up the LLM did not rewrite (it failed): the next such request asks again
        unrewritten = bool(request.conversation) and question == request.question
        pointer = None if unrewritten else job.request_digest
        await rt.answers.put(job.tenant, corpus, prompt=prompt_key, request=pointer, answer=answer)
    return gen


async def _next_delta(deltas: AsyncIterator[str], deadline: float) -> str | None:
    """The stream's next delta (None at its end), unless the deadline (loop time) comes
    first: then the call is stopped (its connection closed) and `UpstreamTimeout` raised."""
    try:
        async with asyncio.timeout_at(deadline):
            return await anext(deltas, None)
    except TimeoutError as exc:
        raise UpstreamTimeout("LLM timed out: the reply did not end by the job's deadline") from exc


async def _emit(emitter: Emitter, text: str) -> None:
    if text:
        await emitter.emit(text)


def _cost(rt: Runtime, model: str, usage: Usage, prompt_chars: int, generated: int) -> float:
    """The call's cost from the usage the LLM reported; estimated when a broken stream
    reported none but text (`generated` characters) was generated."""
    if usage.total_tokens:
        return rt.prices.cost(model, usage.prompt_tokens, usage.completion_tokens)
    if generated <= 0:
        return 0.0
    return rt.prices.cost(
        model, rt.prices.prompt_tokens(prompt_chars), rt.prices.prompt_tokens(generated)
    )
