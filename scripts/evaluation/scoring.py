"""Scoring: one record per question (a failed request is a miss on every metric), and
the means over a set of questions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from scripts.evaluation.metrics import (
    cites_validly,
    hit_at_k,
    keywords_found,
    percentile,
    precision_at_k,
    ranked_document_ids,
    recall_at_k,
    reciprocal_rank,
)
from scripts.evaluation.questions import EvalQuestion
from shared.schemas.jobs import RagResponse


@dataclass(frozen=True)
class CitedChunk:
    """A citation as kept in the report (without its text)."""

    rank: int
    document_id: str
    chunk_id: str
    score: float


@dataclass(frozen=True)
class QuestionResult:
    """Everything measured for one question; a failed request scores zero everywhere."""

    id: str
    kind: str
    question: str
    expected_doc_ids: list[str]
    expected_keywords: list[str]
    ok: bool
    error: str | None
    http_status: int | None
    latency_s: float
    job_id: str | None = None
    answer: str | None = None
    citations: list[CitedChunk] = field(default_factory=list)
    keywords_found: list[str] = field(default_factory=list)
    keyword_fraction: float = 0.0
    keyword_hit: bool = False
    keywords_in_context: bool = False
    hit_at_k: bool = False
    recall_at_k: float = 0.0
    reciprocal_rank: float = 0.0
    precision_at_k: float = 0.0
    degraded: bool = False
    degraded_reason: str | None = None
    cached: bool = False
    cites_valid: bool = False  # `[n]` markers, every one naming a given passage
    attributed: bool = False  # the LLM cited nothing; ragq added the markers (added_markers)

    @property
    def generated(self) -> bool:
        """Answered by the LLM (not an extractive answer)."""
        return self.ok and not self.degraded


def failed_result(
    question: EvalQuestion, error: str, *, http_status: int | None, latency_s: float
) -> QuestionResult:
    """The record of a question whose request failed: a miss on every metric."""
    return QuestionResult(
        id=question.id,
        kind=question.kind,
        question=question.question,
        expected_doc_ids=list(question.expected_doc_ids),
        expected_keywords=list(question.expected_keywords),
        ok=False,
        error=error,
        http_status=http_status,
        latency_s=latency_s,
    )


def score_response(
    question: EvalQuestion,
    response: RagResponse,
    *,
    k: int,
    mrr_depth: int,
    latency_s: float,
) -> QuestionResult:
    """Score one answered question.

    `keyword_hit`: every expected keyword is in the answer text. `keywords_in_context`:
    every expected keyword is in the text of the chunks the answer was built from (all
    returned citations), which tells a retrieval miss from an answer that left it out.
    """
    ranked = ranked_document_ids(response.citations)
    expected = question.expected_doc_ids
    found = keywords_found(response.answer, question.expected_keywords)
    context = "\n".join(c.text for c in response.citations)
    in_context = keywords_found(context, question.expected_keywords)
    return QuestionResult(
        id=question.id,
        kind=question.kind,
        question=question.question,
        expected_doc_ids=list(expected),
        expected_keywords=list(question.expected_keywords),
        ok=True,
        error=None,
        http_status=200,
        latency_s=latency_s,
        job_id=response.job_id,
        answer=response.answer,
        citations=[
            CitedChunk(rank=c.rank, document_id=c.document_id, chunk_id=c.chunk_id, score=c.score)
            for c in sorted(response.citations, key=lambda c: c.rank)
        ],
        keywords_found=found,
        keyword_fraction=len(found) / len(question.expected_keywords),
        keyword_hit=len(found) == len(question.expected_keywords),
        keywords_in_context=len(in_context) == len(question.expected_keywords),
        hit_at_k=hit_at_k(ranked, expected, k),
        recall_at_k=recall_at_k(ranked, expected, k),
        reciprocal_rank=reciprocal_rank(ranked, expected, mrr_depth),
        precision_at_k=precision_at_k(ranked, expected, k),
        degraded=response.degraded,
        degraded_reason=response.degraded_reason,
        cached=response.cached,
        cites_valid=cites_validly(response.answer, response.citations),
        attributed=bool(response.added_markers),
    )


@dataclass(frozen=True)
class Aggregate:
    """Means over a set of questions (failures count as misses); latency over answered ones."""

    questions: int
    answered: int
    failed: int
    degraded: int
    cached: int
    keyword_hit_rate: float
    keyword_fraction: float
    keywords_in_context_rate: float
    hit_at_k: float
    recall_at_k: float
    mrr: float
    precision_at_k: float
    latency_mean_s: float | None
    latency_p95_s: float | None
    # of the answers the LLM generated (not degraded): how many there were, the share of
    # all questions they are, their keyword hit rate, the share that cites validly and the
    # share whose markers ragq added (the model cited nothing)
    generated: int = 0
    generated_rate: float = 0.0
    generated_keyword_hit_rate: float = 0.0
    valid_citation_rate: float = 0.0
    attributed_rate: float = 0.0


def aggregate(results: Sequence[QuestionResult]) -> Aggregate:
    """Aggregate per-question results."""
    n = len(results)

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    latencies = [r.latency_s for r in results if r.ok]
    generated = [r for r in results if r.generated]
    return Aggregate(
        questions=n,
        answered=len(latencies),
        failed=sum(not r.ok for r in results),
        degraded=sum(r.degraded for r in results),
        cached=sum(r.cached for r in results),
        keyword_hit_rate=mean([float(r.keyword_hit) for r in results]),
        keyword_fraction=mean([r.keyword_fraction for r in results]),
        keywords_in_context_rate=mean([float(r.keywords_in_context) for r in results]),
        hit_at_k=mean([float(r.hit_at_k) for r in results]),
        recall_at_k=mean([r.recall_at_k for r in results]),
        mrr=mean([r.reciprocal_rank for r in results]),
        precision_at_k=mean([r.precision_at_k for r in results]),
        latency_mean_s=mean(latencies) if latencies else None,
        latency_p95_s=percentile(latencies, 95),
        generated=len(generated),
        generated_rate=len(generated) / n if n else 0.0,
        generated_keyword_hit_rate=mean([float(r.keyword_hit) for r in generated]),
        valid_citation_rate=mean([float(r.cites_valid) for r in generated]),
        attributed_rate=mean([float(r.attributed) for r in generated]),
    )
