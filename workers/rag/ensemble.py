"""Several embedding models as one: each text's unit vectors from every model, weighted and
concatenated into one unit vector.

For unit vectors q = [√a·q₁, √b·q₂] / √(a+b) and d alike, q·d = (a·cos₁ + b·cos₂) / (a+b): the
cosine of the concatenation is the weighted mean of the models' cosines. That is score fusion
of the models done by the vector store itself, in one collection, one vector per chunk and one
search; changing the models or weights changes the name, hence the collection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # embeddings builds ensembles: a run-time import would be circular
    from workers.rag.embeddings import Embedder

SEPARATOR = "+"


def ensemble_name(names: Sequence[str], weights: Sequence[float]) -> str:
    """`a+b` for equal weights, else `a*2+b*1` (weights as given, `:g`)."""
    if len(set(weights)) == 1:
        return SEPARATOR.join(names)
    return SEPARATOR.join(f"{n}*{w:g}" for n, w in zip(names, weights, strict=True))


def parse_ensemble(spec: str) -> list[tuple[str, float]]:
    """`a+b*2` → [(a, 1.0), (b, 2.0)]; a plain name is a one-model list."""
    parts: list[tuple[str, float]] = []
    for item in spec.split(SEPARATOR):
        name, _, weight = item.strip().partition("*")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"bad weight {weight!r} in embedding model {spec!r}") from None
        if not name or not math.isfinite(value) or value <= 0:
            raise ValueError(f"embedding model {spec!r}: each part is NAME or NAME*WEIGHT > 0")
        parts.append((name, value))
    return parts


class EnsembleEmbedder:
    """The weighted concatenation of several embedders' unit vectors, renormalised."""

    def __init__(self, parts: Sequence[Embedder], weights: Sequence[float] | None = None) -> None:
        weights = list(weights) if weights is not None else [1.0] * len(parts)
        if len(parts) < 2 or len(weights) != len(parts) or min(weights) <= 0:
            raise ValueError("an ensemble needs two or more embedders with positive weights")
        self.name = ensemble_name([p.name for p in parts], weights)
        self.dim = sum(p.dim for p in parts)
        self._parts = list(parts)
        total = sum(weights)
        self._scales = [math.sqrt(w / total) for w in weights]

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        """One vector per text. The models run one after another: each already uses every
        core, so running them side by side would only make them wait for each other."""
        if not texts:
            return []
        blocks = []
        for part, scale in zip(self._parts, self._scales, strict=True):
            block = np.asarray(await part.embed(texts, query=query), dtype=np.float32)
            norms = np.linalg.norm(block, axis=1, keepdims=True)
            unit = np.divide(block, norms, out=np.zeros_like(block), where=norms > 0)
            blocks.append(unit * scale)
        joined = np.concatenate(blocks, axis=1)
        norms = np.linalg.norm(joined, axis=1, keepdims=True)
        result: list[list[float]] = np.divide(
            joined, norms, out=np.zeros_like(joined), where=norms > 0
        ).tolist()
        return result

    async def aclose(self) -> None:
        """Close every part."""
        for part in self._parts:
            await part.aclose()
