"""What `scripts.bench.retrieval_eval` tries: the embedded models, loaded once per run with
their passage vectors cached on disk, and the hybrid fusions (`score:1:0.25`, `rank:1:2`).
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from scripts.bench.vectorcache import DiskCachedEmbedder, cache_dir
from shared.config import Settings
from workers.rag.embeddings import EMBEDDED
from workers.rag.ensemble import parse_ensemble


class Models:
    """Each embedded model loaded once for the whole run, its passage vectors cached on disk."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor
        self._loaded: dict[str, DiskCachedEmbedder] = {}

    async def parts(self, spec: str) -> tuple[list[DiskCachedEmbedder], list[float]]:
        """The (cached) models of an embedder spec (`a`, `a+b`, `a*2+b`) and their weights."""
        parsed = parse_ensemble(spec)
        for name, _ in parsed:
            if name not in self._loaded:
                loop = asyncio.get_running_loop()
                inner = await loop.run_in_executor(self._executor, EMBEDDED[name], self._executor)
                self._loaded[name] = DiskCachedEmbedder(inner, cache_dir())
                await self._loaded[name].load()
        return [self._loaded[name] for name, _ in parsed], [weight for _, weight in parsed]

    async def aclose(self) -> None:
        for model in self._loaded.values():
            await model.aclose()


@dataclass(frozen=True)
class Hybrid:
    """One hybrid fusion tried: `score:1:0.25` (z-score fusion) or `rank:1:2` (weighted RRF),
    weights dense:BM25."""

    fusion: str
    weights: tuple[float, float]

    @classmethod
    def parse(cls, value: str) -> Hybrid:
        fusion, dense, lexical = value.split(":")
        if fusion not in ("score", "rank"):
            raise argparse.ArgumentTypeError(f"{value!r}: score:D:S or rank:D:S")
        return cls(fusion, (float(dense), float(lexical)))

    def apply(self, settings: Settings) -> Settings:
        field = "score_weights" if self.fusion == "score" else "rrf_weights"
        return settings.model_copy(update={"hybrid_fusion": self.fusion, field: self.weights})

    def __str__(self) -> str:
        return f"{self.fusion} {self.weights[0]:g}:{self.weights[1]:g}"
