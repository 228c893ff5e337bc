"""all-MiniLM-L6-v2 in processes of its own (RAGQ_EMBEDDING_PROCESSES): the same vectors as
in the worker's threads, questions batched as there, the children gone after closing, and a
killed child replaced by a fresh pool instead of failing every later question."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest

from shared.config import Settings
from workers.rag.embeddings import build_embedder
from workers.rag.minilm import MiniLMEmbedder

REFERENCE = json.loads(
    (Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8")
)


@pytest.fixture
async def embedder() -> AsyncIterator[MiniLMEmbedder]:
    """The model in one child process, built as the worker builds it from its settings."""
    settings = Settings(_env_file=None, embeddings_base_url="", embedding_processes=1)
    executor = ThreadPoolExecutor(1)
    built = await build_embedder(settings, executor)
    assert isinstance(built, MiniLMEmbedder)
    yield built
    await built.aclose()
    executor.shutdown()


def _children() -> list[multiprocessing.Process]:
    return [p for p in multiprocessing.active_children() if p.is_alive()]


async def test_vectors_are_the_reference_ones_and_the_children_end_on_close(
    embedder: MiniLMEmbedder,
) -> None:
    """Passages and concurrent questions get sentence-transformers' vectors from the child;
    after closing, no child process is left."""
    cases = REFERENCE["cases"][:6]
    passages = await embedder.embed([c["text"] for c in cases])
    questions = await asyncio.gather(*(embedder.embed([c["text"]], query=True) for c in cases))
    for case, passage, (question,) in zip(cases, passages, questions, strict=True):
        np.testing.assert_allclose(passage, case["vector"], atol=1e-4)
        np.testing.assert_allclose(question, case["vector"], atol=1e-4)
    assert len(_children()) == 1
    await embedder.aclose()
    assert _children() == []


async def test_a_killed_child_is_replaced(embedder: MiniLMEmbedder) -> None:
    """SIGKILL the child: the question in flight (or the next) fails with the broken pool,
    and the one after it is answered by a fresh child."""
    [first] = await embedder.embed(["how do I rotate keys?"], query=True)
    [child] = _children()
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    failed = 0
    for _ in range(3):  # the pool notices the death on the next call at the latest
        try:
            [again] = await embedder.embed(["how do I rotate keys?"], query=True)
        except BrokenProcessPool:
            failed += 1
            continue
        break
    assert failed <= 1
    np.testing.assert_allclose(again, first, atol=1e-6)
    assert [p.pid for p in _children()] != [child.pid]
