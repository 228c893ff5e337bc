"""Moving tenants to another embedding model (workers/rag/indexes.py, workers/reembed.py) on
the real Redis and Qdrant's local mode, with two real models (WordLlama, and WordLlama twice
as an ensemble: another vector size, so another collection): questions are answered from the
tenant's model until its switch, new chunks reach both collections meanwhile, a purged
version is not resurrected by the copy, and the old collection is dropped at the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from shared.config import Settings
from shared.documents import DocumentStore
from shared.redis_keys import Keys
from shared.schemas.documents import DocumentCreate
from tests.integration.chunkstores import KEYS, LUNCH, chunks_of
from workers.rag.embeddings import WordLlamaEmbedder
from workers.rag.ensemble import EnsembleEmbedder
from workers.rag.indexes import Index, Indexes
from workers.rag.retrieval import Retriever
from workers.rag.vectorstore import ChunkStore
from workers.reembed import LockLost, Migration

pytestmark = pytest.mark.integration

OLD = "wordllama-l2-supercat-256"


@dataclass
class World:
    """A deployment that ran on WordLlama and now has the ensemble configured."""

    redis: Redis
    keys: Keys
    documents: DocumentStore
    old: Index
    new: Index
    settings: Settings

    async def indexes(self) -> Indexes:
        indexes = Indexes(self.redis, self.keys, self.new)

        async def opener(model: str) -> Index:
            assert model == OLD
            return self.old

        await indexes.start(opener)
        return indexes

    async def add(self, indexes: list[Index], tenant: str, doc_id: str, text: str) -> None:
        """What the ingest job does: stage a version, write its chunks to `indexes`, publish."""
        _, version = await self.documents.stage(
            tenant, DocumentCreate(id=doc_id, title=doc_id, text=text), job_id=f"j-{doc_id}"
        )
        chunks = chunks_of(tenant, doc_id, text, version=version)
        for index in indexes:
            vectors = await index.embedder.embed([c.text for c in chunks])
            await index.store.upsert(chunks, vectors)
        await self.documents.publish(tenant, doc_id, version, len(chunks))

    def migration(self, indexes: Indexes) -> Migration:
        return Migration(indexes, self.redis, self.keys, self.documents, "test", grace_s=0)


@pytest.fixture
async def world(redis: Redis, keys: Keys, settings: Settings) -> AsyncIterator[World]:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-reembed") as pool:
        wordllama = WordLlamaEmbedder.load(pool)
        twice = EnsembleEmbedder([wordllama, WordLlamaEmbedder.load(pool)])
        # as in a worker: the configured model's store owns the client, the old one shares it
        new_settings = settings.model_copy(update={"embeddings_model": twice.name})
        new_store = await ChunkStore.open(new_settings, dim=twice.dim)
        old_settings = settings.model_copy(update={"embeddings_model": OLD})
        old_store = await new_store.sibling(old_settings, dim=wordllama.dim)
        # the deployment's first worker ran on the old model: it is the base
        await redis.set(keys.index_base, OLD)
        yield World(
            redis,
            keys,
            DocumentStore(redis, keys),
            Index(OLD, wordllama, old_store),
            Index(twice.name, twice, new_store),
            settings,
        )
        await old_store.aclose()
        await new_store.aclose()


async def _cited(retriever: Retriever, tenant: str, question: str) -> list[str]:
    citations = await retriever.retrieve(tenant, question, top_k=3, filters={})
    return [c.document_id for c in citations]


async def _versions(store: ChunkStore, tenant: str) -> set[tuple[str, str]]:
    chunks, _ = await store.scroll(tenant, limit=1000)
    return {(c.document_id, c.version) for c in chunks}


async def test_a_tenant_is_answered_from_its_model_until_it_is_moved(world: World) -> None:
    """Before the move questions are answered from the old collection (the new one holds
    only what was ingested since); a document posted meanwhile reaches both; after the move
    the tenant is served from the new collection and the old one is gone."""
    await world.add([world.old], "acme", "keys", KEYS)
    indexes = await world.indexes()
    retriever = Retriever(indexes, world.documents, mode="dense")
    assert [i.model for i in indexes.previous] == [OLD]
    assert (await _cited(retriever, "acme", "how do I rotate the signing key"))[0] == "keys"

    writes = await indexes.for_writes("acme")
    assert [i.model for i in writes] == [world.new.model, OLD]
    await world.add(writes, "acme", "lunch", LUNCH)
    assert (await _cited(retriever, "acme", "when is lunch served"))[0] == "lunch"
    assert {d for d, _ in await _versions(world.new.store, "acme")} == {"lunch"}

    corpus_before = await world.redis.get(world.keys.corpus("acme"))
    migration = world.migration(indexes)
    await migration.run()

    assert migration.moved == ["acme"]
    assert await indexes.model_of("acme") == world.new.model
    assert await world.redis.get(world.keys.corpus("acme")) != corpus_before  # no stale answers
    assert {d for d, _ in await _versions(world.new.store, "acme")} == {"keys", "lunch"}
    assert (await _cited(retriever, "acme", "how do I rotate the signing key"))[0] == "keys"
    assert indexes.previous == []
    assert await indexes.for_writes("acme") == [world.new]
    assert world.old.store.collection_name not in await _collections(world.new.store)


async def _collections(store: ChunkStore) -> set[str]:
    response = await store._collection.call("get_collections")
    return {c.name for c in response.collections}


async def test_a_version_no_longer_current_is_not_copied_back(world: World) -> None:
    """Chunks of a replaced version still in the old collection (their purge raced the copy)
    are removed from the new one before the switch: only the current version is served."""
    await world.add([world.old], "acme", "keys", KEYS)
    await world.add([world.old], "acme", "keys", KEYS + "\n\nA second version.")
    [(_, current)] = [
        (d, v)
        for d, v in await _versions(world.old.store, "acme")
        if v == (await world.documents.get("acme", "keys") or {}).get("version")
    ]
    assert len(await _versions(world.old.store, "acme")) == 2  # the old version's chunks too
    indexes = await world.indexes()
    await world.migration(indexes).run()
    assert await _versions(world.new.store, "acme") == {("keys", current)}


async def test_tenants_without_a_record_are_moved_and_new_tenants_start_on_the_new_model(
    world: World,
) -> None:
    """Tenants that only had the base model get their own record and are moved; once the
    move began the base is the new model, so a tenant created after it is never moved."""
    await world.add([world.old], "acme", "keys", KEYS)
    await world.add([world.old], "beta", "lunch", LUNCH)
    indexes = await world.indexes()
    assert await indexes.model_of("gamma") == OLD  # before: the base
    migration = world.migration(indexes)
    await migration.run()
    assert sorted(migration.moved) == ["acme", "beta"]
    assert await indexes.base() == world.new.model
    assert await indexes.model_of("gamma") == world.new.model
    assert await indexes.tenant_records() == {"acme": world.new.model, "beta": world.new.model}


class Gated:
    """An embedder that, once called, waits for `release` before it embeds."""

    def __init__(self, inner: Index) -> None:
        self.name, self.dim = inner.embedder.name, inner.embedder.dim
        self._inner = inner.embedder
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        self.entered.set()
        await self.release.wait()
        return await self._inner.embed(texts, query=query)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_worker_that_loses_the_lock_stops_moving(world: World) -> None:
    """If the migration lock passes to another worker mid-copy (this one stalled past its
    TTL), this worker stops: the tenant is not switched by it and the other's lock stays."""
    await world.add([world.old], "acme", "keys", KEYS)
    gated = Gated(world.new)
    world.new = Index(world.new.model, gated, world.new.store)
    indexes = await world.indexes()
    migration = Migration(
        indexes, world.redis, world.keys, world.documents, "me", grace_s=0, lock_ttl_s=0.3
    )
    running = asyncio.create_task(migration.run())
    await gated.entered.wait()  # copying acme, holding the lock
    await world.redis.set(world.keys.index_migration, "other", px=60_000)
    with pytest.raises(LockLost):
        await running
    gated.release.set()
    assert await indexes.model_of("acme") == OLD
    assert migration.moved == []
    assert await world.redis.get(world.keys.index_migration) == "other"
