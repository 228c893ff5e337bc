"""A Redis cache in front of any embedder, keyed by model and a hash of the text.

Re-ingesting a document (a replace, a retried job) or asking a repeated question
then costs one batched MGET instead of a model pass.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

import numpy as np
from redis.asyncio import Redis

from shared.metrics import CACHE_REQUESTS
from shared.redis_keys import Keys
from workers.rag.embeddings import Embedder


def _encode(vector: Sequence[float]) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def _decode(raw: str) -> list[float]:
    return np.frombuffer(base64.b64decode(raw), dtype="<f4").tolist()  # type: ignore[no-any-return]


class CachedEmbedder:
    """Wraps an `Embedder`: cached vectors come from Redis, the rest from the model."""

    def __init__(self, inner: Embedder, redis: Redis, keys: Keys, *, ttl_s: int) -> None:
        self.name = inner.name
        self.dim = inner.dim
        self._inner = inner
        self._redis = redis
        self._keys = keys
        self._ttl_s = ttl_s
        self.hits = 0
        self.misses = 0

    def _key(self, text: str, query: bool) -> str:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        # a question's vector and the same text's passage vector differ for asymmetric models
        return self._keys.embedding(f"{self.name}/query" if query else self.name, digest)

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        """One vector per text, same order; misses are embedded in one batch and stored."""
        if not texts:
            return []
        keys = [self._key(t, query) for t in texts]
        cached: list[str | None] = await self._redis.mget(keys)
        vectors: list[list[float] | None] = [_decode(c) if c else None for c in cached]
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            fresh = await self._inner.embed([texts[i] for i in missing], query=query)
            async with self._redis.pipeline(transaction=False) as pipe:
                for i, vector in zip(missing, fresh, strict=True):
                    vectors[i] = vector
                    pipe.set(keys[i], _encode(vector), ex=self._ttl_s)
                await pipe.execute()
        hits = len(texts) - len(missing)
        self.hits += hits
        self.misses += len(missing)
        CACHE_REQUESTS.labels(layer="embedding", result="hit").inc(hits)
        CACHE_REQUESTS.labels(layer="embedding", result="miss").inc(len(missing))
        return [v for v in vectors if v is not None]

    async def aclose(self) -> None:
        """Close the wrapped embedder."""
        await self._inner.aclose()
