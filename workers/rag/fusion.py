"""How search results are ranked: the tuning of BM25 and hybrid fusion, the fusion of the
dense and BM25 lists (by normalised scores, or weighted reciprocal rank), the per-document
cap and the order of ties.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qdrant_client import models

from shared.config import Settings
from workers.rag import sparse
from workers.rag.points import Hit, stored_chunk

SCORE_STATS_DEPTH = 100  # hits of each list whose scores set its normalisation


@dataclass(frozen=True, slots=True)
class SearchTuning:
    """BM25 parameters of stored sparse vectors and the weighting of hybrid fusion.

    Defaults chosen on the macro average of docs/EVAL.md's sets (the held-out one apart):
    score fusion with BM25 weighing half of the dense list beat weighted RRF at every
    weight tried there (RRF lets a chunk that merely repeats the question's words overtake a
    confident dense match, which costs FAQ-style paraphrases most). RRF stays selectable
    (`fusion="rank"`), and finds a rare identifier that BM25 ranks only just first more
    often. BM25 parameters apply to chunks as they are upserted: changing them re-indexes.
    """

    fusion: str = "score"  # hybrid: "score" (`fuse_scores`) or "rank" (`fuse`, RRF)
    score_weights: tuple[float, float] = (1.0, 0.5)  # dense list, sparse list (score fusion)
    rrf_weights: tuple[float, float] = (1.0, 2.0)  # dense list, sparse list
    rrf_k: int = 10  # RRF rank constant: rank r in a list of weight w adds 1 / (r/w + k - 1)
    bm25_k1: float = sparse.K1
    bm25_b: float = sparse.B
    bm25_avgdl: float = sparse.AVGDL

    def __post_init__(self) -> None:
        if self.fusion not in ("score", "rank"):
            raise ValueError(f"fusion must be 'score' or 'rank', not {self.fusion!r}")
        for name in ("score_weights", "rrf_weights"):
            dense_w, sparse_w = getattr(self, name)
            if dense_w < 0 or sparse_w < 0 or dense_w + sparse_w == 0:
                raise ValueError(f"{name} must be >= 0 and not both 0, not {(dense_w, sparse_w)}")
        if self.rrf_k < 1:
            raise ValueError(f"rrf_k must be at least 1, not {self.rrf_k}")
        sparse.encode_document("", k1=self.bm25_k1, b=self.bm25_b, avgdl=self.bm25_avgdl)

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchTuning:
        """The tuning the settings ask for (RAGQ_RRF_WEIGHTS, RAGQ_RRF_K, RAGQ_BM25_*)."""
        return cls(
            fusion=settings.hybrid_fusion,
            score_weights=settings.score_weights,
            rrf_weights=settings.rrf_weights,
            rrf_k=settings.rrf_k,
            bm25_k1=settings.bm25_k1,
            bm25_b=settings.bm25_b,
            bm25_avgdl=settings.bm25_avgdl or sparse.default_avgdl(settings.chunk_max_chars),
        )


def rank_key(hit: Hit) -> tuple[float, str, int, str]:
    """Best score first, then document id, chunk index and version: ties in a stable order."""
    return (-hit.score, hit.chunk.document_id, hit.chunk.index, hit.chunk.version)


def fuse(
    lists: Sequence[Sequence[models.ScoredPoint]], weights: Sequence[float], k: int
) -> list[Hit]:
    """Weighted reciprocal rank fusion, with Qdrant's formula: a point at rank r of a list
    of weight w gains 1 / (r / w + k - 1).

    Fused here rather than by a Qdrant `FusionQuery`: there, equal scores in one list get
    consecutive ranks in whatever order Qdrant returns them, so identical chunks would get
    different fused scores; here equal scores share the best of their ranks, and identical
    chunks tie and are ordered like any tie.
    """
    scores: dict[models.ExtendedPointId, float] = {}
    payloads: dict[models.ExtendedPointId, Mapping[str, Any]] = {}
    for points, weight in zip(lists, weights, strict=True):
        if weight <= 0:
            continue
        rank, previous = 0, math.nan
        for position, point in enumerate(points, start=1):
            if point.score != previous:
                rank, previous = position, point.score
            scores[point.id] = scores.get(point.id, 0.0) + 1 / (rank / weight + k - 1)
            payloads[point.id] = point.payload or {}
    return [Hit(chunk=stored_chunk(payloads[i]), score=score) for i, score in scores.items()]


def fuse_scores(
    lists: Sequence[Sequence[models.ScoredPoint]], weights: Sequence[float]
) -> list[Hit]:
    """Distribution-based score fusion (Qdrant's DBSF, weighted): each list's scores are
    mapped onto [0, 1] by the mean ± 3 standard deviations of its best `SCORE_STATS_DEPTH`
    (clipped; a fixed depth, so the fusion does not depend on how many hits were asked
    for), and a point's fused
    score is the weighted mean of its normalised scores; a point absent from a list gets that
    list's lowest (it scored below everything listed). A list whose scores are all equal
    normalises to 1.

    Unlike ranks, normalised scores keep how far ahead a hit is: a confident dense match is
    not overtaken by a chunk that merely repeats the question's words, and a rare exact term
    that only BM25 sees stands out of BM25's list as far as it scores above the rest.
    """
    normalised: list[tuple[dict[models.ExtendedPointId, float], float, float]] = []
    payloads: dict[models.ExtendedPointId, Mapping[str, Any]] = {}
    for points, weight in zip(lists, weights, strict=True):
        if weight <= 0 or not points:
            continue
        values = [p.score for p in points[:SCORE_STATS_DEPTH]]  # lists come best first
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        norm = {p.id: _unit(p.score, mean, sd) for p in points}
        normalised.append((norm, min(norm.values()), weight))
        payloads.update((p.id, p.payload or {}) for p in points)
    total = sum(weight for *_, weight in normalised) or 1.0
    return [
        Hit(
            chunk=stored_chunk(payload),
            score=sum(w * norm.get(i, floor) for norm, floor, w in normalised) / total,
        )
        for i, payload in payloads.items()
    ]


def _unit(score: float, mean: float, sd: float) -> float:
    if sd == 0:
        return 1.0
    return min(1.0, max(0.0, (score - mean + 3 * sd) / (6 * sd)))


def collapse(hits: list[Hit], max_per_document: int | None) -> list[Hit]:
    """At most `max_per_document` hits per document version, best first.

    Per version, not per document: while a replaced version awaits its purge, its chunks
    must not crowd out the visible version's (the retriever drops invisible versions).
    """
    if max_per_document is None:
        return hits
    seen: Counter[tuple[str, str]] = Counter()
    kept = []
    for hit in hits:
        key = (hit.chunk.document_id, hit.chunk.version)
        seen[key] += 1
        if seen[key] <= max_per_document:
            kept.append(hit)
    return kept
