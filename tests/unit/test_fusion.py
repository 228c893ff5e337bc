"""Score fusion of the dense and BM25 lists (`fuse_scores`): normalised scores in [0, 1], a
point missing from a list scored as that list's lowest, and a far-ahead hit kept ahead."""

from __future__ import annotations

from typing import Any

import pytest
from qdrant_client import models

from workers.rag.fusion import fuse_scores


def _point(pid: int, score: float) -> models.ScoredPoint:
    payload: dict[str, Any] = {
        "tenant": "acme",
        "document_id": f"d{pid}",
        "version": "v1",
        "index": 0,
        "start": 0,
        "end": 1,
        "text": "x",
        "title": "",
        "section": None,
        "metadata": {},
    }
    return models.ScoredPoint(id=pid, version=0, score=score, payload=payload)


def _fused(dense: list[tuple[int, float]], bm25: list[tuple[int, float]], w=(1.0, 1.0)):
    hits = fuse_scores([[_point(*p) for p in dense], [_point(*p) for p in bm25]], w)
    return {h.chunk.document_id: h.score for h in hits}


def test_a_far_ahead_dense_hit_stays_ahead_of_a_bm25_only_hit() -> None:
    """Dense is sure of d1 (far above the rest); BM25 slightly prefers d2: d1 wins, which
    rank fusion, blind to the margins, would call a tie."""
    dense = [(1, 0.90), (2, 0.40), (3, 0.39), (4, 0.38), (5, 0.37)]
    bm25 = [(2, 5.0), (1, 4.9), (3, 1.0), (4, 0.9), (5, 0.8)]
    scores = _fused(dense, bm25)
    assert max(scores, key=scores.__getitem__) == "d1"
    assert all(0.0 <= s <= 1.0 for s in scores.values())


def test_a_point_in_one_list_only_gets_the_other_lists_lowest_score() -> None:
    """d3 is only in the dense list: its BM25 part is BM25's lowest normalised score."""
    dense = [(1, 0.9), (2, 0.5), (3, 0.1)]  # mean 0.5, sd 0.32660
    bm25 = [(4, 8.0), (1, 1.0)]  # mean 4.5, sd 3.5
    scores = _fused(dense, bm25)
    sd = (0.32 / 3) ** 0.5
    d3_dense = (0.1 - 0.5 + 3 * sd) / (6 * sd)
    bm25_floor = (1.0 - 4.5 + 3 * 3.5) / (6 * 3.5)  # d1's, the lowest in BM25's list
    assert scores["d3"] == pytest.approx((d3_dense + bm25_floor) / 2)
    assert scores["d4"] == pytest.approx(((0.1 - 0.5 + 3 * sd) / (6 * sd) + 14 / 21) / 2)


def test_weights_of_zero_leave_one_list() -> None:
    dense = [(1, 0.9), (2, 0.5)]
    bm25 = [(2, 9.0), (1, 1.0)]
    assert max((s, d) for d, s in _fused(dense, bm25, (1.0, 0.0)).items())[1] == "d1"
    assert max((s, d) for d, s in _fused(dense, bm25, (0.0, 1.0)).items())[1] == "d2"
