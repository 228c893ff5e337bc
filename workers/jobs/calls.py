"""The record of an LLM call (or of an answer that needed none): metrics and the
`llm.call` log line, with the status and degraded reason of a failed call."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.errors import CircuitOpen, UpstreamError, UpstreamTimeout
from shared.logging import get_logger
from shared.metrics import LLM_CALLS, LLM_LATENCY, LLM_TOKENS, LLM_TTFT
from shared.schemas.jobs import DegradedReason, Usage
from workers.rag.replies import Completion

log = get_logger("workers.answer")


@dataclass(slots=True)
class Generation:
    """How the answer text came about."""

    model: str | None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    degraded_reason: DegradedReason | None = None
    cached: bool = False
    removed_markers: list[str] = field(default_factory=list)  # by the citation check
    added_markers: list[str] = field(default_factory=list)  # by attribution (uncited answer)


def called(
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


def not_called(gen: Generation, model: str | None = None) -> Generation:
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


def call_status(exc: UpstreamError) -> str | None:
    """The `ragq_llm_calls_total` status of a failed call; None when no call was made."""
    if isinstance(exc, CircuitOpen):
        return None
    return "timeout" if isinstance(exc, UpstreamTimeout) else "error"


def degraded_reason(exc: UpstreamError) -> DegradedReason:
    """Why an answer whose call failed is degraded."""
    if isinstance(exc, CircuitOpen):
        return "circuit_open"
    return "llm_timeout" if isinstance(exc, UpstreamTimeout) else "llm_unavailable"
