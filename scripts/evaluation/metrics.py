"""The metrics of one answered question: keyword matching over the answer text, and
rank metrics (hit@k, recall@k, MRR, precision@k) over the cited documents."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from shared.schemas.jobs import Citation


def normalise(text: str) -> str:
    """Case-folded text with every run of white space as one space, for keyword matching."""
    return " ".join(text.casefold().split())


def keywords_found(text: str, keywords: Sequence[str]) -> list[str]:
    """The keywords that occur in `text`, ignoring case and white-space differences."""
    haystack = normalise(text)
    return [kw for kw in keywords if normalise(kw) in haystack]


_MARKER = re.compile(r"\[(\d+)\]")


def cites_validly(answer: str, citations: Sequence[Citation]) -> bool:
    """Whether the answer cites at least one passage with an `[n]` marker and every
    marker names a passage it was given."""
    markers = {int(n) for n in _MARKER.findall(answer)}
    return bool(markers) and markers <= {c.index for c in citations}


def ranked_document_ids(citations: Sequence[Citation]) -> list[str]:
    """The cited chunks' document ids in retrieval-rank order (rank 1 first)."""
    return [c.document_id for c in sorted(citations, key=lambda c: c.rank)]


def hit_at_k(ranked: Sequence[str], expected: Sequence[str], k: int) -> bool:
    """Whether any expected document is among the first `k` ranked chunks."""
    wanted = set(expected)
    return any(doc in wanted for doc in ranked[:k])


def recall_at_k(ranked: Sequence[str], expected: Sequence[str], k: int) -> float:
    """The fraction of the expected documents that appear among the first `k` ranked chunks."""
    wanted = set(expected)
    return len(wanted & set(ranked[:k])) / len(wanted)


def reciprocal_rank(ranked: Sequence[str], expected: Sequence[str], depth: int) -> float:
    """1 / position of the first chunk of an expected document within `depth`; 0 if none."""
    wanted = set(expected)
    for position, doc in enumerate(ranked[:depth], start=1):
        if doc in wanted:
            return 1.0 / position
    return 0.0


def precision_at_k(ranked: Sequence[str], expected: Sequence[str], k: int) -> float:
    """The fraction of the first `k` ranked chunks whose document is expected.

    Chunks are not deduplicated per document: the metric measures how much of the
    context handed to the model comes from the right documents, so three chunks of the
    expected document and two off-topic ones give 0.6. The divisor is always `k` (a
    service returning fewer chunks counts the empty slots as misses). Its ceiling is
    below 1 when the expected documents have fewer than `k` chunks, so compare it
    between runs rather than against 1.0.
    """
    wanted = set(expected)
    return sum(doc in wanted for doc in ranked[:k]) / k


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q`-th percentile (0 < q <= 100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
