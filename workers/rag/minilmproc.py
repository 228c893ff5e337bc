"""all-MiniLM-L6-v2 in processes of its own (`RAGQ_EMBEDDING_PROCESSES`): a process pool
whose children each load the encoder once, and the module-level function they run.

A worker with embedded Qdrant is one process (the folder's lock), so its event loop, the
vector store and the model share one interpreter lock; the model is its largest CPU cost
per question. In a child process it runs on another core instead. A child that dies (OOM
killer, a signal) fails the batches it held; the next batch starts a fresh pool.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from threadpoolctl import threadpool_limits

from shared.logging import get_logger
from workers.rag.bert import Array, MiniLMEncoder, model_dir

log = get_logger("workers.rag.minilmproc")
_encoder: MiniLMEncoder | None = None  # in a child: loaded by `_load`


def _load() -> None:
    """A child's initializer: one BLAS thread (the pool's processes are the parallelism),
    the weights from the installed package."""
    global _encoder
    threadpool_limits(limits=1, user_api="blas")
    _encoder = MiniLMEncoder.from_directory(model_dir())


def encode(texts: Sequence[str]) -> Array:
    """Run in a child: unit vectors of `texts` (MiniLMEncoder.encode)."""
    if _encoder is None:
        raise RuntimeError("the MiniLM child process has no encoder loaded")
    return _encoder.encode(texts)


class EncoderProcesses(concurrent.futures.Executor):
    """A process pool of `processes` encoder children (spawned, so nothing of the
    worker's threads or sockets is inherited) that replaces itself when it broke."""

    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            self._processes, mp_context=multiprocessing.get_context("spawn"), initializer=_load
        )

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        with self._lock:
            try:
                return self._pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                log.warning("embedding.processes_restarted", processes=self._processes)
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
