"""Passage vectors kept on disk between evaluation runs, one file per model, keyed by a hash of
the text: a second run over the same sets embeds nothing, so trying another search mode,
weight or ensemble costs seconds instead of the half hour the slower models need.

Only passages are cached; questions are embedded every time, so per-query timings are real.
The folder is $RAGQ_VECTORS_CACHE, else ~/.cache/ragq-vectors.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from workers.rag.embeddings import Embedder


def cache_dir() -> Path:
    """Where the vector files live."""
    return Path(os.environ.get("RAGQ_VECTORS_CACHE", "~/.cache/ragq-vectors")).expanduser()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class DiskCachedEmbedder:
    """An embedder whose passage vectors come from, and go to, `<dir>/<model>.npz`."""

    def __init__(self, inner: Embedder, directory: Path) -> None:
        self.name = inner.name
        self.dim = inner.dim
        self.inner = inner
        self._path = directory / f"{inner.name}.npz"
        self._vectors: dict[str, np.ndarray] = {}
        self._dirty = False

    async def load(self) -> None:
        """Read the model's file, if there is one (off the event loop)."""
        if self._path.is_file():
            self._vectors = await asyncio.to_thread(self._read)

    def _read(self) -> dict[str, np.ndarray]:
        with np.load(self._path) as data:
            keys, matrix = data["keys"], data["vectors"]
        return {str(k): row for k, row in zip(keys, matrix, strict=True)}

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        """Questions from the model; passages from the file, the missing ones from the model."""
        if query:
            return await self.inner.embed(texts, query=True)
        keys = [_digest(t) for t in texts]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self._vectors}.values())
        if missing:
            fresh = await self.inner.embed([texts[i] for i in missing])
            for i, vector in zip(missing, fresh, strict=True):
                self._vectors[keys[i]] = np.asarray(vector, dtype=np.float32)
            self._dirty = True
            await self.save()  # a long run interrupted keeps what it computed
        return [self._vectors[k].tolist() for k in keys]

    async def save(self) -> None:
        """Write the file when vectors were added (off the event loop)."""
        if self._dirty:
            await asyncio.to_thread(self._write)
            self._dirty = False

    def _write(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._vectors), dtype="U32")
        matrix = np.stack(list(self._vectors.values())).astype(np.float32)
        partial = self._path.with_suffix(".partial.npz")
        np.savez(partial, keys=keys, vectors=matrix)
        partial.replace(self._path)

    async def aclose(self) -> None:
        """Save, then close the model."""
        await self.save()
        await self.inner.aclose()
