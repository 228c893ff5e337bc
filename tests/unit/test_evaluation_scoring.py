"""Scoring one answered question on hand-made API responses: keywords in the answer and in
its sources, and the rank metrics over the cited documents."""

from __future__ import annotations

import pytest

from scripts.evaluation.scoring import aggregate
from tests.unit.evaluation_fakes import question, rag, scored


def test_keywords_match_ignoring_case_and_white_space() -> None:
    """A keyword counts whatever its case or line breaks in the answer."""
    q = question(keywords=("vlt-4031", "14 days"))
    result = scored(q, rag("Error VLT-4031 [1]; kept for 14\n  DAYS [2].", "good"))
    assert result.keyword_hit
    assert result.keyword_fraction == 1.0


def test_partial_keywords_are_a_miss_with_the_fraction_reported() -> None:
    """An answer with one of two keywords is not a hit, and the report says half were found."""
    q = question(keywords=("vault-primary", "5 minutes"))
    result = scored(q, rag("The vault-primary rotation owns it [1].", "good"))
    assert not result.keyword_hit
    assert result.keyword_fraction == 0.5
    assert result.keywords_found == ["vault-primary"]


def test_keywords_in_the_cited_chunks_but_not_the_answer_are_told_apart() -> None:
    """A keyword the sources hold but the answer left out shows as 'in context', not a hit."""
    q = question(keywords=("VLT-4031",))
    body = rag("Rotate it [1].", "good", texts=("fails with VLT-4031 while pinned",))
    result = scored(q, body)
    assert not result.keyword_hit
    assert result.keywords_in_context


def test_reciprocal_rank_follows_the_rank_field() -> None:
    """MRR uses each citation's `rank`, not its position in the list."""
    body = rag("a", "other", "noise", "good")
    body["citations"].reverse()  # listed good, noise, other; ranks still 3, 2, 1
    result = scored(question(), body)
    assert result.reciprocal_rank == pytest.approx(1 / 3)
    assert [c.document_id for c in result.citations] == ["other", "noise", "good"]


def test_reciprocal_rank_is_zero_when_no_expected_document_is_cited() -> None:
    """A question whose documents never show up scores 0 on MRR and hit@k."""
    result = scored(question(), rag("a", "x", "y", "z"))
    assert result.reciprocal_rank == 0.0
    assert not result.hit_at_k


def test_hit_at_k_only_looks_at_the_first_k_ranks() -> None:
    """An expected document at rank 6 misses hit@5 but still counts for MRR@10."""
    result = scored(question(), rag("a", "a1", "a2", "a3", "a4", "a5", "good"))
    assert not result.hit_at_k
    assert result.reciprocal_rank == pytest.approx(1 / 6)


def test_precision_counts_chunks_not_distinct_documents() -> None:
    """Three chunks of the expected document among five give precision@5 = 0.6."""
    result = scored(question(), rag("a", "good", "x", "good", "y", "good", "good"))
    assert result.precision_at_k == pytest.approx(0.6)


def test_precision_divides_by_k_even_with_fewer_citations() -> None:
    """Two right chunks when five were asked for give precision@5 = 0.4, not 1.0."""
    result = scored(question(), rag("a", "good", "good"))
    assert result.precision_at_k == pytest.approx(0.4)


def test_multi_document_questions_report_recall() -> None:
    """A two-document question citing one of them is a hit@k with recall 0.5."""
    q = question(docs=("good", "also"), kind="multi")
    result = scored(q, rag("a", "x", "good"))
    assert result.hit_at_k
    assert result.recall_at_k == 0.5


def test_generated_answers_report_valid_and_added_citations() -> None:
    """Of three answers the LLM wrote, two cite validly — one of them with the markers ragq
    added — and one names a passage it was not given; the extractive one is not counted."""
    q = question()
    added = rag("Copied text. [1]", "good")
    added["added_markers"] = ["[1]"]
    results = [
        scored(q, rag("It is so [1].", "good")),
        scored(q, added),
        scored(q, rag("It is so [4].", "good")),
        scored(q, rag("Extractive [1].", "good", degraded=True)),
    ]
    overall = aggregate(results)
    assert (overall.generated, overall.valid_citation_rate) == (3, pytest.approx(2 / 3))
    assert overall.attributed_rate == pytest.approx(1 / 3)
