"""The Redis embedding cache: repeated texts skip the model, vectors come back intact."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from redis.asyncio import Redis

from shared.redis_keys import Keys
from workers.rag.embedcache import CachedEmbedder
from workers.rag.embeddings import WordLlamaEmbedder

pytestmark = pytest.mark.integration


class CountingEmbedder:
    """The real WordLlama model, counting the texts it is asked to embed."""

    def __init__(self, inner: WordLlamaEmbedder) -> None:
        self.name, self.dim, self.inner, self.seen = inner.name, inner.dim, inner, 0

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        self.seen += len(texts)
        return await self.inner.embed(texts)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def model() -> AsyncIterator[CountingEmbedder]:
    """WordLlama behind a counter."""
    executor = ThreadPoolExecutor(1)
    embedder = CountingEmbedder(WordLlamaEmbedder.load(executor))
    yield embedder
    await embedder.aclose()
    executor.shutdown()


async def test_second_embedding_of_a_text_comes_from_the_cache(
    redis: Redis, keys: Keys, model: CountingEmbedder
) -> None:
    """Texts embedded once are served from Redis after that, in the caller's order, with
    the same vectors; only new texts reach the model."""
    cache = CachedEmbedder(model, redis, keys, ttl_s=3600)  # outlives the test, however slow
    first = await cache.embed(["rotate keys", "refund window"])
    second = await cache.embed(["refund window", "new text", "rotate keys"])
    direct = await model.inner.embed(["refund window", "new text", "rotate keys"])
    assert model.seen == 3
    assert (cache.hits, cache.misses) == (2, 3)
    assert second[0] == pytest.approx(first[1], abs=1e-6)
    assert [v for row in second for v in row] == pytest.approx(
        [v for row in direct for v in row], abs=1e-5
    )
    assert len(second) == 3


async def test_a_questions_vector_is_stored_in_the_background_and_served_after(
    redis: Redis, keys: Keys, model: CountingEmbedder
) -> None:
    """A question's vector is returned without waiting for its cache write; the write
    lands (closing waits for it), and another worker's cache then serves the question
    without the model, while the same text as a passage is a different entry."""
    first = CachedEmbedder(model, redis, keys, ttl_s=3600)
    [vector] = await first.embed(["how do I rotate keys?"], query=True)
    await first.aclose()  # waits for the background write; closes the model too
    executor = ThreadPoolExecutor(1)
    fresh = CountingEmbedder(WordLlamaEmbedder.load(executor))
    second = CachedEmbedder(fresh, redis, keys, ttl_s=3600)
    try:
        [again] = await second.embed(["how do I rotate keys?"], query=True)
        assert (fresh.seen, again) == (0, pytest.approx(vector, abs=1e-6))
        await second.embed(["how do I rotate keys?"])
        assert fresh.seen == 1
    finally:
        await second.aclose()
        executor.shutdown()
