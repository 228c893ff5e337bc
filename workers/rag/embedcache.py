"""A Redis cache in front of any embedder, keyed by model and a hash of the text.

Re-ingesting a document (a replace, a retried job) or asking a repeated question
then costs one batched MGET instead of a model pass. A question's new vector is stored in
the background: the search it is for does not wait for that write.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Sequence

import numpy as np
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.logging import get_logger
from shared.metrics import CACHE_REQUESTS
from shared.redis_keys import Keys
from workers.rag.embeddings import Embedder

log = get_logger("workers.rag.embedcache")
STORE_GRACE_S = 2.0  # how long closing waits for question vectors still being stored


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
        self._storing: set[asyncio.Task[None]] = set()

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
            for i, vector in zip(missing, fresh, strict=True):
                vectors[i] = vector
            entries = {keys[i]: _encode(v) for i, v in zip(missing, fresh, strict=True)}
            if query:  # a question waits for its search, not for this write
                task = asyncio.create_task(
                    self._store(entries, background=True), name="ragq-embedding-store"
                )
                self._storing.add(task)
                task.add_done_callback(self._storing.discard)
            else:
                await self._store(entries, background=False)
        hits = len(texts) - len(missing)
        self.hits += hits
        self.misses += len(missing)
        CACHE_REQUESTS.labels(layer="embedding", result="hit").inc(hits)
        CACHE_REQUESTS.labels(layer="embedding", result="miss").inc(len(missing))
        return [v for v in vectors if v is not None]

    async def _store(self, entries: dict[str, str], *, background: bool) -> None:
        """Write vectors with the cache's TTL; a failed write in the `background` (a
        question's vector) is only a future miss (logged), a passage's raises to its
        ingest job."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in entries.items():
                    pipe.set(key, value, ex=self._ttl_s)
                await pipe.execute()
        except RedisError as exc:
            if not background:
                raise
            log.warning("embedding_cache.store_failed", error=str(exc), vectors=len(entries))

    async def aclose(self) -> None:
        """Let question vectors still being stored finish (briefly), then close the
        wrapped embedder."""
        if self._storing:
            await asyncio.wait(set(self._storing), timeout=STORE_GRACE_S)
        await self._inner.aclose()
