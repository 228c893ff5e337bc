"""Embedders: the bundled WordLlama loads offline and embeds off the event loop; the
OpenAI-compatible client batches, keeps order and learns the vector size."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
import wordllama
from wordllama import WordLlama

from shared.config import Settings
from workers.rag.embeddings import OpenAIEmbedder, WordLlamaEmbedder, build_embedder

THREAD_PREFIX = "test-embed"


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    """The worker's CPU executor."""
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix=THREAD_PREFIX)
    yield pool
    pool.shutdown(wait=True)


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "embeddings_base_url": "",
        "embeddings_model": "wordllama-l2-supercat-256",
    } | overrides
    return Settings(_env_file=None, **values)


def _cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


async def test_wordllama_loads_from_the_package_without_network(
    executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WordLlama option starts on a machine that cannot reach a model hub."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("WordLlama tried to download")

    monkeypatch.setattr(wordllama.wordllama.requests, "get", no_network)
    embedder = await build_embedder(
        _settings(embeddings_model="wordllama-l2-supercat-256"), executor
    )
    assert isinstance(embedder, WordLlamaEmbedder)
    assert (embedder.name, embedder.dim) == ("wordllama-l2-supercat-256", 256)


async def test_similar_texts_score_higher_than_unrelated_ones(
    executor: ThreadPoolExecutor,
) -> None:
    """Retrieval can rank: a paraphrase is closer to the question than an unrelated text."""
    embedder = await build_embedder(_settings(), executor)
    question, related, unrelated = await embedder.embed(
        [
            "How do I rotate the signing key?",
            "To rotate a signing key, create a new key and retire the old one.",
            "The cafeteria serves lunch from noon until two.",
        ]
    )
    assert _cosine(question, related) > _cosine(question, unrelated)
    assert [round(float(np.linalg.norm(v)), 5) for v in (question, related)] == [1.0, 1.0]


async def test_wordllama_embeds_every_text_in_order(executor: ThreadPoolExecutor) -> None:
    """One vector per text, in input order, also for empty input and a blank text."""
    embedder = await build_embedder(_settings(), executor)
    texts = [f"document number {i} about topic {i % 7}" for i in range(150)]
    together = await embedder.embed(texts)
    alone = [(await embedder.embed([t]))[0] for t in texts[:3]]
    assert len(together) == 150
    np.testing.assert_allclose(together[:3], alone, atol=1e-6)
    assert await embedder.embed([]) == []
    assert await embedder.embed([""]) == [[0.0] * 256]


class _SpyModel:
    """Wraps the real model and records the thread each embed runs on."""

    def __init__(self, model: Any) -> None:
        self.embedding = model.embedding
        self._model = model
        self.threads: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def embed(self, texts: list[str], **kwargs: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        self.started.set()
        assert self.release.wait(timeout=60), "the event loop never ran while embedding"
        return self._model.embed(texts, **kwargs)


def _real_model() -> Any:
    return WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)


async def test_embed_runs_on_the_executor_and_leaves_the_loop_free(
    executor: ThreadPoolExecutor,
) -> None:
    """Embedding a batch never blocks other jobs: it runs on the executor's thread."""
    spy = _SpyModel(_real_model())
    embedder = WordLlamaEmbedder(spy, executor)
    task = asyncio.create_task(embedder.embed(["some text"]))
    # While the model is still working, this coroutine gets to run and releases it; a model
    # running on the loop's thread would wait forever for this.
    assert await asyncio.to_thread(spy.started.wait, 60)
    spy.release.set()
    vectors = await task
    assert len(vectors) == 1
    assert [name.startswith(THREAD_PREFIX) for name in spy.threads] == [True]


def _fake_server(requests: list[dict[str, Any]], dim: int) -> httpx2.AsyncClient:
    """An OpenAI-compatible embeddings endpoint that answers in reverse order."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        requests.append(body)
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text))] * dim}
            for i, text in enumerate(body["input"])
        ]
        return httpx2.Response(
            200,
            json={
                "object": "list",
                "data": data[::-1],
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handle))


async def test_openai_embedder_batches_keeps_order_and_learns_dim() -> None:
    """A served model's vectors come back in input order, requested batch by batch."""
    requests: list[dict[str, Any]] = []
    embedder = OpenAIEmbedder(
        base_url="http://embeddings.test/v1",
        model="bge-small",
        api_key="secret",
        timeout_s=5.0,
        batch_size=2,
        http_client=_fake_server(requests, dim=3),
    )
    try:
        await embedder.start()
        vectors = await embedder.embed(["a", "bb", "ccc", "dddd", "eeeee"])
    finally:
        await embedder.aclose()
    assert embedder.dim == 3
    assert [v[0] for v in vectors] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [r["input"] for r in requests[1:]] == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    assert {(r["model"], r["encoding_format"]) for r in requests} == {("bge-small", "float")}


async def test_unknown_model_without_a_server_url_is_refused(
    executor: ThreadPoolExecutor,
) -> None:
    """Naming a served model but forgetting its URL fails at startup, not with wrong vectors."""
    with pytest.raises(ValueError, match="RAGQ_EMBEDDINGS_BASE_URL"):
        await build_embedder(_settings(embeddings_model="bge-small"), executor)
