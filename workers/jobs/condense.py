"""Making a follow-up stand alone before retrieval: one short LLM call (temperature 0, at
most `CONDENSE_MAX_TOKENS`, its own `RAGQ_LLM_CONDENSE_TIMEOUT_S`) that rewrites the job's
question in the light of its conversation.

The job's question is already the deterministic rule's standalone question (api/condense.py,
or the client's own on `POST /v1/jobs`): it is used as is when the job has no conversation,
the tier has no LLM, the budget has no room, or the call fails or replies with something
that is no question (empty, cut at the token limit, longer than `CONDENSE_MAX_CHARS`).
Every such outcome is logged and counted (`ragq_condense_total`), never shown to the client.
The call's cost is reserved and settled like the answer's (under policy `reject` the
submit-time estimate already made room for it), and reported with the job's usage.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Literal

from shared.budget import Reservation, today
from shared.errors import UpstreamError
from shared.jobrecord import JobRecord
from shared.logging import get_logger
from shared.metrics import BUDGET_SPEND, CONDENSE, LLM_COST, LLM_TOKENS
from shared.prompting import (
    CONDENSE_MAX_CHARS,
    CONDENSE_MAX_TOKENS,
    CONDENSE_PROMPT,
    condense_messages,
)
from shared.schemas.jobs import AnswerJobPayload, Usage
from workers.jobs.calls import degraded_reason
from workers.lifecycle import Runtime
from workers.rag.replies import Completion

log = get_logger("workers.condense")

Outcome = Literal["llm", "fallback", "skipped"]
# condensation calls share one prompt prefix: route them alike (vLLM's prefix cache)
_AFFINITY = hashlib.sha256(CONDENSE_PROMPT.encode()).hexdigest()
_LABEL = re.compile(r"^(?:(?:standalone|rewritten|follow-up)\s+)?question:\s*", re.IGNORECASE)
_QUOTES = "\"'“”‘’`"


@dataclass(slots=True)
class Condensed:
    """The question to retrieve and answer by, and what finding it cost."""

    question: str
    outcome: Outcome | None = None  # None: the job has no conversation
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0


async def condense(rt: Runtime, job: AnswerJobPayload, record: JobRecord) -> Condensed:
    """The job's question made to stand alone by the LLM, or as it came (see the module
    docstring); never raises for the LLM's sake."""
    request = job.request
    if not request.conversation:
        return Condensed(request.question)
    client = rt.llm_for(job.tier)
    if client is None:
        return _counted(Condensed(request.question, "skipped"), "no_llm_configured")
    model = request.model or client.default_model
    messages = condense_messages(request.conversation, request.question)
    prompt_chars = sum(len(m["content"]) for m in messages)
    held = rt.budgets.held(record)
    if held is not None:  # policy `reject`: the submit-time estimate covers this call
        reservation = Reservation(held.day, held.tenant, 0)
    else:
        got = await rt.budgets.reserve(
            job.tenant,
            rt.prices.worst_case(model, prompt_chars, CONDENSE_MAX_TOKENS),
            job.tenant_budget_usd,
        )
        if isinstance(got, str):
            return _counted(Condensed(request.question, "fallback"), "budget_exhausted")
        reservation = got

    completion = Completion(model=model)
    parts: list[str] = []
    reason: str | None = None
    started = time.perf_counter()
    try:
        async with asyncio.timeout(rt.settings.llm_condense_timeout_s):
            async for delta in client.stream(
                messages,
                completion=completion,
                max_tokens=CONDENSE_MAX_TOKENS,
                temperature=0.0,
                affinity=_AFFINITY,
            ):
                parts.append(delta)
    except UpstreamError as exc:
        reason = degraded_reason(exc)
    except TimeoutError:
        reason = "llm_timeout"
    finally:
        text = "".join(parts)
        cost = _cost(rt, model, completion.usage, prompt_chars, text)
        # settled even when the job is cancelled meanwhile: what was generated is paid for
        spent = await asyncio.shield(rt.budgets.settle(reservation, cost))
        LLM_COST.labels(model=model).inc(cost)
        LLM_TOKENS.labels(model=model, direction="prompt").inc(completion.usage.prompt_tokens)
        LLM_TOKENS.labels(model=model, direction="completion").inc(
            completion.usage.completion_tokens
        )
        if reservation.day == today():
            BUDGET_SPEND.labels(scope="service").set(spent)
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    question = None if reason else _question(text, completion)
    if question is None:
        reason = reason or "unusable_reply"
    result = Condensed(question or request.question, "fallback" if reason else "llm")
    result.usage, result.cost_usd = completion.usage, cost
    return _counted(result, reason, model=model, latency_ms=latency_ms)


def _question(text: str, completion: Completion) -> str | None:
    """The rewritten question in a reply: its first non-empty line, without a leading
    `Question:` label or surrounding quotes; None when that is no usable question."""
    if completion.finish_reason == "length":  # cut short: half a question retrieves badly
        return None
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line).strip().strip(_QUOTES).strip()
    if not line or len(line) > CONDENSE_MAX_CHARS:
        return None
    return line


def _cost(rt: Runtime, model: str, usage: Usage, prompt_chars: int, text: str) -> float:
    """The call's cost from the usage the LLM reported; estimated when a broken stream
    reported none but text was generated."""
    if usage.total_tokens:
        return rt.prices.cost(model, usage.prompt_tokens, usage.completion_tokens)
    if not text:
        return 0.0
    return rt.prices.cost(
        model, rt.prices.prompt_tokens(prompt_chars), rt.prices.prompt_tokens(len(text))
    )


def _counted(
    result: Condensed,
    reason: str | None,
    *,
    model: str | None = None,
    latency_ms: float = 0.0,
) -> Condensed:
    """Count and log an outcome (the questions themselves at debug level: user text)."""
    assert result.outcome is not None
    CONDENSE.labels(outcome=result.outcome).inc()
    event = log.warning if result.outcome == "fallback" else log.info
    event(
        "condense.done",
        outcome=result.outcome,
        reason=reason,
        model=model,
        latency_ms=latency_ms,
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        cost_usd=result.cost_usd,
    )
    log.debug("condense.question", question=result.question)
    return result
