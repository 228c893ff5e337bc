"""Moving every tenant to the configured embedding model while answers keep working.

One worker at a time (a Redis lock, renewed while it works) takes the tenants still served by
another model, one by one:

1. copy the tenant's chunks into the configured model's collection with new vectors (the
   payloads as stored, so citations and offsets do not change);
2. delete there any version of a copied document that is no longer current (a purge may have
   raced the copy);
3. switch the tenant's record in one SET (`Indexes.switch`): its next question is answered
   from the new collection.

Until its switch a tenant is answered from its old collection, and chunks ingested meanwhile
go to both (`Indexes.for_writes`). When no tenant is left on a model, its collection is
dropped, a grace period after the last switch (a search that began before it may still run).
An interrupted move starts that tenant again: copying is idempotent (same point ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.asyncio import Redis

from shared.documents import DocumentStore, kept_versions
from shared.logging import get_logger
from shared.lua import source
from shared.redis_keys import Keys
from workers.rag.indexes import Index, Indexes

log = get_logger("workers.reembed")
LOCK_TTL_S = 30.0
PAGE = 128  # chunks per scroll page and embedding call


class LockLost(RuntimeError):
    """Another worker holds the migration lock now: this one stops moving tenants."""


class Migration:
    """The move of every tenant to `indexes.target`, run by one worker of the fleet."""

    def __init__(
        self,
        indexes: Indexes,
        redis: Redis,
        keys: Keys,
        documents: DocumentStore,
        token: str,
        *,
        grace_s: float = 30.0,
        lock_ttl_s: float = LOCK_TTL_S,
    ) -> None:
        self._indexes = indexes
        self._redis = redis
        self._keys = keys
        self._documents = documents
        self._token = token
        self._renew = redis.register_script(source("lock_renew"))
        self._release = redis.register_script(source("lock_release"))
        self._grace_s = grace_s
        self._lock_ttl_s = lock_ttl_s
        self.moved: list[str] = []

    async def run(self) -> None:
        """Wait for the lock, move every tenant, drop the collections left empty."""
        if not self._indexes.previous:
            return
        ttl_ms = int(self._lock_ttl_s * 1000)
        lock = self._keys.index_migration
        while not await self._redis.set(lock, self._token, nx=True, px=ttl_ms):
            if not await self._left():
                return  # another worker finished the move
            await asyncio.sleep(self._lock_ttl_s / 3)  # it may die: then its lock expires
        # the move runs only while the lock is this worker's: when renewing it fails (the
        # lock expired, Redis is away), the move is stopped, not left to race another worker
        renewer = asyncio.create_task(self._keep_lock(ttl_ms), name="reembed-lock")
        mover = asyncio.create_task(self._move_all(), name="reembed-move")
        try:
            await asyncio.wait([renewer, mover], return_when=asyncio.FIRST_COMPLETED)
            if not mover.done():
                mover.cancel()
                await asyncio.gather(mover, return_exceptions=True)
                renewer.result()  # its error says why the move stopped
                raise LockLost("the embedding migration lock was lost")
            mover.result()
        finally:
            for task in (renewer, mover):
                task.cancel()
            await asyncio.gather(renewer, mover, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._release(keys=[self._keys.index_migration], args=[self._token])

    async def _keep_lock(self, ttl_ms: int) -> None:
        while True:
            await asyncio.sleep(self._lock_ttl_s / 3)
            if not await self._renew(keys=[self._keys.index_migration], args=[self._token, ttl_ms]):
                raise LockLost("the embedding migration lock expired")

    async def _left(self) -> bool:
        """Whether any tenant may still be on another model (read only: safe without the lock)."""
        target = self._indexes.target.model
        if await self._indexes.base() != target:
            return True
        return any(m != target for m in (await self._indexes.tenant_records()).values())

    async def _pending(self) -> dict[str, str]:
        """Tenants on a model other than the configured one (under the lock: it pins them)."""
        target = self._indexes.target.model
        await self._pin_tenants()
        return {t: m for t, m in (await self._indexes.tenant_records()).items() if m != target}

    async def _pin_tenants(self) -> None:
        """Give every tenant with documents an explicit record (the base model, when it has
        none), then make the configured model the base: tenants created from now on start
        on it, and no tenant changes model except by `switch`."""
        base = await self._indexes.base()
        target = self._indexes.target.model
        if base == target:
            return
        prefix = self._keys.documents("")
        async for key in self._redis.scan_iter(match=f"{prefix}*", count=500):
            tenant = key.removeprefix(prefix)
            await self._redis.set(self._keys.index_tenant(tenant), base, nx=True)
        await self._redis.set(self._keys.index_base, target)

    async def _move_all(self) -> None:
        started = time.perf_counter()
        open_models = {index.model: index for index in self._indexes.previous}
        for tenant, model in sorted((await self._pending()).items()):
            source_index = open_models.get(model)
            if source_index is None:
                log.error("reembed.model_not_open", tenant=tenant, model=model)
                continue
            await self._move(tenant, source_index)
        still_used = set((await self._pending()).values())
        unused = [index for index in self._indexes.previous if index.model not in still_used]
        if unused:
            # a question that looked up its tenant's model just before the switch may still
            # be searching the old collection: give it time to finish before dropping it
            await asyncio.sleep(self._grace_s)
        for index in unused:
            await index.store.drop()
            await self._indexes.forget(index.model)
            log.info("reembed.collection_dropped", model=index.model)
        for model in sorted(still_used):
            log.warning("reembed.collection_kept", model=model)
        log.info("reembed.done", tenants=len(self.moved), seconds=time.perf_counter() - started)

    async def _move(self, tenant: str, old: Index) -> None:
        new = self._indexes.target
        copied = 0
        documents: dict[str, set[str]] = {}
        offset: str | None = None
        while True:
            chunks, offset = await old.store.scroll(tenant, offset=offset, limit=PAGE)
            if chunks:
                vectors = await new.embedder.embed([c.text for c in chunks])
                await new.store.upsert(chunks, vectors)
                copied += len(chunks)
                for c in chunks:
                    documents.setdefault(c.document_id, set()).add(c.version)
            if offset is None:
                break
        for doc_id in documents:  # versions purged while they were being copied
            keep = kept_versions(await self._documents.get(tenant, doc_id))
            await new.store.delete_document(tenant, doc_id, keep_versions=keep)
        await self._indexes.switch(tenant, new.model)
        self.moved.append(tenant)
        log.info("reembed.tenant_moved", tenant=tenant, chunks=copied, old=old.model, new=new.model)


async def migrate_until_done(migration: Migration, *, retry_s: float = LOCK_TTL_S) -> None:
    """Run the migration; after a failure (Redis or Qdrant away, the lock lost) log it and
    start again, since every step can be repeated, until no tenant is left to move."""
    while True:
        try:
            await migration.run()
            return
        except Exception as exc:  # whatever broke, the move is retried from the tenant it was on
            log.error("reembed.failed", error=repr(exc), retry_s=retry_s)
        await asyncio.sleep(retry_s)
