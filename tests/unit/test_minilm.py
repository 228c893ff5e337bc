"""all-MiniLM-L6-v2 in numpy: loads from its wheel offline, matches sentence-transformers'
vectors (fixture computed once with torch), ranks paraphrases, truncates long texts and embeds
off the event loop."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.config import Settings
from workers.rag.bert import MAX_TOKENS, MiniLMEncoder
from workers.rag.embeddings import build_embedder
from workers.rag.minilm import MiniLMEmbedder, model_dir

THREAD_PREFIX = "test-minilm"
REFERENCE = json.loads(
    (Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8")
)


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    """The real model, loaded once for the module."""
    return MiniLMEncoder.from_directory(model_dir())


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    """The worker's CPU executor."""
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix=THREAD_PREFIX)
    yield pool
    pool.shutdown(wait=True)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


async def test_minilm_is_selected_by_name_and_loads_from_the_package(
    executor: ThreadPoolExecutor,
) -> None:
    """RAGQ_EMBEDDINGS_MODEL=all-minilm-l6-v2 starts the bundled model with no server or hub."""
    settings = Settings(_env_file=None, embeddings_base_url="", embeddings_model="all-minilm-l6-v2")
    embedder = await build_embedder(settings, executor)
    try:
        assert isinstance(embedder, MiniLMEmbedder)
        assert (embedder.name, embedder.dim) == ("all-minilm-l6-v2", 384)
        (vector,) = await embedder.embed(["hello"])
        assert len(vector) == 384
    finally:
        await embedder.aclose()


async def test_vectors_match_sentence_transformers(
    encoder: MiniLMEncoder, executor: ThreadPoolExecutor
) -> None:
    """Vectors equal the reference implementation's, for short, non-ASCII, code and long texts."""
    cases: list[dict[str, Any]] = REFERENCE["cases"]
    assert any(case["tokens"] > MAX_TOKENS for case in cases)  # truncation is covered
    assert any(128 < case["tokens"] <= MAX_TOKENS for case in cases)  # so is no early cut
    embedder = MiniLMEmbedder(encoder.encode, executor, batch_size=4)
    vectors = await embedder.embed([case["text"] for case in cases])
    for case, vector in zip(cases, vectors, strict=True):
        np.testing.assert_allclose(vector, case["vector"], atol=1e-4, err_msg=case["text"][:40])
        assert _cosine(vector, case["vector"]) > 0.9999


async def test_paraphrases_score_higher_than_unrelated_text(
    encoder: MiniLMEncoder, executor: ThreadPoolExecutor
) -> None:
    """Retrieval can rank: a paraphrase is closer to the question than an unrelated text."""
    embedder = MiniLMEmbedder(encoder.encode, executor)
    question, related, unrelated = await embedder.embed(
        [
            "How do I rotate the signing key?",
            "To rotate a signing key, create a new key and retire the old one.",
            "The cafeteria serves lunch from noon until two.",
        ]
    )
    assert _cosine(question, related) > _cosine(question, unrelated) + 0.2
    assert [round(float(np.linalg.norm(v)), 5) for v in (question, related)] == [1.0, 1.0]


async def test_long_texts_are_truncated_to_the_model_limit(
    encoder: MiniLMEncoder, executor: ThreadPoolExecutor
) -> None:
    """A text past 256 tokens is embedded from its first 256 tokens instead of failing."""
    embedder = MiniLMEmbedder(encoder.encode, executor)
    long_text = next(c["text"] for c in REFERENCE["cases"] if c["tokens"] > MAX_TOKENS)
    huge = long_text + " and then a very long tail" * 2000
    long_vector, huge_vector = await embedder.embed([long_text, huge])
    np.testing.assert_allclose(huge_vector, long_vector, atol=1e-6)
    assert round(float(np.linalg.norm(huge_vector)), 5) == 1.0


async def test_empty_and_blank_texts_get_the_models_vector(
    encoder: MiniLMEncoder, executor: ThreadPoolExecutor
) -> None:
    """An empty or blank text gets a finite unit vector (the reference's), empty input none."""
    embedder = MiniLMEmbedder(encoder.encode, executor)
    empty = next(c["vector"] for c in REFERENCE["cases"] if c["text"] == "")
    vectors = await embedder.embed(["", "  \n\t "])
    for vector in vectors:
        np.testing.assert_allclose(vector, empty, atol=1e-4)
    assert await embedder.embed([]) == []


async def test_batches_keep_input_order(
    encoder: MiniLMEncoder, executor: ThreadPoolExecutor
) -> None:
    """One vector per text in input order, whatever the batch boundaries and lengths."""
    texts = [f"document {i} " + "about queues " * (i % 9) for i in range(23)]
    together = await MiniLMEmbedder(encoder.encode, executor, batch_size=5).embed(texts)
    alone = [(await MiniLMEmbedder(encoder.encode, executor).embed([t]))[0] for t in texts[:4]]
    assert len(together) == len(texts)
    np.testing.assert_allclose(together[:4], alone, atol=1e-5)


class _SpyEncoder:
    """Wraps the real encoder and records the thread each batch runs on."""

    def __init__(self, encoder: MiniLMEncoder) -> None:
        self._encoder = encoder
        self.threads: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def encode(self, texts: Sequence[str]) -> Any:
        self.threads.append(threading.current_thread().name)
        self.started.set()
        assert self.release.wait(timeout=60), "the event loop never ran while embedding"
        return self._encoder.encode(texts)


async def test_embed_runs_on_the_executor_and_leaves_the_loop_free(
    encoder: MiniLMEncoder, executor: ThreadPoolExecutor
) -> None:
    """Embedding never blocks other jobs: every batch runs on the executor's threads."""
    spy = _SpyEncoder(encoder)
    embedder = MiniLMEmbedder(spy.encode, executor, batch_size=2)
    task = asyncio.create_task(embedder.embed(["one", "two", "three"]))
    # While the model is still working, this coroutine gets to run and releases it; a model
    # running on the loop's thread would wait forever for this.
    assert await asyncio.to_thread(spy.started.wait, 60)
    spy.release.set()
    vectors = await task
    assert len(vectors) == 3
    assert [name.startswith(THREAD_PREFIX) for name in spy.threads] == [True, True]


async def test_concurrent_questions_are_batched_and_each_gets_its_own_vector(
    encoder: MiniLMEncoder, executor: ThreadPoolExecutor
) -> None:
    """20 questions asked at once (as 20 jobs do) go out in a few batches, not 20 encoder
    runs, and each gets the vector it gets alone."""
    questions = [f"How do I rotate signing key number {i}?" for i in range(20)]
    alone = [encoder.encode([q])[0] for q in questions]
    runs: list[int] = []

    def counting(texts: Sequence[str]) -> Any:
        runs.append(len(texts))
        return encoder.encode(texts)

    embedder = MiniLMEmbedder(encoder.encode, executor, in_flight=2)
    embedder._questions._encode = counting  # count the encoder runs of the question path
    vectors = await asyncio.gather(*(embedder.embed([q], query=True) for q in questions))
    for (vector,), expected in zip(vectors, alone, strict=True):
        np.testing.assert_allclose(vector, expected, atol=1e-5)
    assert sum(runs) == 20
    assert len(runs) <= 5  # two started at once, the other 18 in batches of up to 8
