"""Which embedding model serves each tenant: one collection per model, a record per tenant.

Every embedding model has a Qdrant collection of its own (`Settings.collection_name`). Redis
records the model that answers each tenant's questions (`Keys.index_tenant`); a tenant with no
record is served by the deployment's base model (`Keys.index_base`), which the first worker
ever sets to its own. A worker started with another model (RAGQ_EMBEDDINGS_MODEL changed) also
opens every model tenants are still on: questions are answered from the tenant's model, new
chunks are written to the configured model's collection and to the tenant's, and
`workers.reembed` moves the tenants over one at a time, each switched by one SET.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.logging import get_logger
from shared.redis_keys import Keys
from workers.rag.embeddings import Embedder
from workers.rag.vectorstore import ChunkStore

log = get_logger("workers.indexes")


@dataclass(frozen=True, slots=True)
class Index:
    """One embedding model and the collection of its vectors."""

    model: str
    embedder: Embedder
    store: ChunkStore


Opener = Callable[[str], Awaitable[Index]]


class Indexes:
    """The configured model's index and those tenants are still served from."""

    def __init__(self, redis: Redis, keys: Keys, target: Index) -> None:
        self.target = target
        self._redis = redis
        self._keys = keys
        self._others: dict[str, Index] = {}

    async def start(self, opener: Opener) -> None:
        """Record the base model if none is yet, then open every other model a tenant is on
        (one that cannot be opened stops the worker: its tenants could not be answered)."""
        await self._redis.set(self._keys.index_base, self.target.model, nx=True)
        models = {await self.base()} | set((await self.tenant_records()).values())
        for model in sorted(models - {self.target.model}):
            try:
                self._others[model] = await opener(model)
            except Exception as exc:
                raise RuntimeError(
                    f"tenants are still served by the embedding model {model!r}, which this"
                    f" worker cannot open ({exc}); run a worker that can until `ragq index"
                    " status` shows none left on it"
                ) from exc
            log.info("index.previous_opened", model=model, target=self.target.model)

    @property
    def previous(self) -> list[Index]:
        """The models other than the configured one that are open (tenants still on them)."""
        return list(self._others.values())

    def all(self) -> list[Index]:
        """Every open index, the configured one first."""
        return [self.target, *self._others.values()]

    async def base(self) -> str:
        """The model of tenants with no record."""
        raw = await self._redis.get(self._keys.index_base)
        return raw or self.target.model

    async def tenant_records(self) -> dict[str, str]:
        """Every tenant's recorded model."""
        return await tenant_records(self._redis, self._keys)

    async def model_of(self, tenant: str) -> str:
        """The model that serves the tenant now (one round trip)."""
        record, base = await self._redis.mget(
            [self._keys.index_tenant(tenant), self._keys.index_base]
        )
        return record or base or self.target.model

    async def serving(self, tenant: str) -> Index:
        """The index that answers the tenant's questions."""
        model = await self.model_of(tenant)
        return self._others.get(model, self.target)

    async def for_writes(self, tenant: str) -> list[Index]:
        """Where the tenant's new chunks go: the configured index, and the serving one
        until the tenant is moved."""
        serving = await self.serving(tenant)
        return [self.target] if serving is self.target else [self.target, serving]

    async def switch(self, tenant: str, model: str) -> None:
        """Serve the tenant from `model` from now on, and bump its corpus version so no
        answer cached from the old vectors is served."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.index_tenant(tenant), model)
            pipe.incr(self._keys.corpus(tenant))
            await pipe.execute()

    async def forget(self, model: str) -> None:
        """Close a model no tenant is on any more."""
        index = self._others.pop(model, None)
        if index is not None:
            await index.embedder.aclose()
            await index.store.aclose()

    async def aclose(self) -> None:
        """Close every index, the configured one last."""
        for model in list(self._others):
            await self.forget(model)
        await self.target.embedder.aclose()
        await self.target.store.aclose()


async def tenant_records(redis: Redis, keys: Keys) -> dict[str, str]:
    """Every tenant's recorded model (also read by `ragq index status`)."""
    prefix = keys.index_tenant("")
    records: dict[str, str] = {}
    async for key in redis.scan_iter(match=f"{prefix}*", count=500):
        model = await redis.get(key)
        if model:
            records[key.removeprefix(prefix)] = model
    return records
