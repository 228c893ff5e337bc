"""The chunk store on Qdrant's local mode with real WordLlama vectors, as storage: tenant
scoping, filters, deletes, idempotent upserts, stable order, persistence, the collection's
layout checks and the thread local mode runs on. Search modes: test_vectorstore_search.py."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient, models

from shared.config import Settings
from shared.schemas.common import Scalar
from tests.integration.chunkstores import (
    KEYS,
    LUNCH,
    OpenStore,
    chunks_of,
    index_chunks,
    search_ids,
)
from workers.rag.embeddings import WordLlamaEmbedder
from workers.rag.qdrant import CollectionMismatchError

pytestmark = pytest.mark.integration


async def test_a_tenant_never_sees_another_tenants_chunks(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """Searching as one tenant returns only that tenant's chunks, even for the other's text."""
    store = await open_store()
    await index_chunks(store, embedder, chunks_of("acme", "keys", KEYS))
    await index_chunks(
        store, embedder, chunks_of("globex", "keys", KEYS) + chunks_of("globex", "x", LUNCH)
    )
    [vector] = await embedder.embed([LUNCH])
    hits = await store.search("acme", vector, text=LUNCH, limit=10)
    assert [(h.chunk.tenant, h.chunk.document_id) for h in hits] == [("acme", "keys")]
    assert await store.search("initech", vector, text=LUNCH, limit=10) == []
    with pytest.raises(ValueError, match="tenant"):
        await store.search("", vector, text=LUNCH, limit=10)


async def test_hits_carry_the_stored_chunk_unchanged(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A citation gets back exactly the text, offsets, section and metadata that were stored."""
    store = await open_store()
    chunks = chunks_of("acme", "keys", KEYS, metadata={"product": "vault", "year": 2024})
    await index_chunks(store, embedder, chunks)
    [vector] = await embedder.embed(["rotate the signing key"])
    [hit] = await store.search("acme", vector, text="rotate the signing key", limit=5)
    assert hit.chunk == chunks[0]
    assert hit.chunk.chunk_id == "keys:0"
    assert 0.0 < hit.score <= 1.0 + 1e-6


async def test_metadata_filters_keep_only_matching_chunks(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """Filters match metadata values of every scalar type, and keys that need quoting."""
    store = await open_store()
    await index_chunks(
        store,
        embedder,
        chunks_of("acme", "a", KEYS, metadata={"product": "vault", "year": 2024, "team.name": "x"})
        + chunks_of("acme", "b", KEYS, metadata={"product": "nomad", "public": True, "w": 0.5})
        + chunks_of("acme", "c", LUNCH, metadata={"product": "vault", "public": False}),
    )

    async def docs(**filters: Scalar) -> list[str]:
        return [d for d, _, _ in await search_ids(store, embedder, "acme", KEYS, filters=filters)]

    assert await docs(product="vault") == ["a", "c"]
    assert await docs(product="vault", year=2024) == ["a"]
    assert await docs(public=True) == ["b"]
    assert await docs(w=0.5) == ["b"]
    assert await docs(**{"team.name": "x"}) == ["a"]
    assert await docs(product="consul") == []


async def test_delete_document_removes_every_version(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A deleted document's chunks, of any version, stop appearing in search."""
    store = await open_store()
    await index_chunks(store, embedder, chunks_of("acme", "keys", KEYS, version="v1"))
    await index_chunks(store, embedder, chunks_of("acme", "keys", KEYS, version="v2"))
    await index_chunks(store, embedder, chunks_of("acme", "lunch", LUNCH))
    await index_chunks(store, embedder, chunks_of("globex", "keys", KEYS))
    await store.delete_document("acme", "keys")
    assert await search_ids(store, embedder, "acme", KEYS) == [("lunch", "v1", 0)]
    assert await search_ids(store, embedder, "globex", KEYS) == [("keys", "v1", 0)]


async def test_delete_document_except_version_keeps_the_new_version(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """After a re-index, old versions are purged and the current one stays searchable."""
    store = await open_store()
    await index_chunks(store, embedder, chunks_of("acme", "keys", KEYS, version="v1"))
    await index_chunks(store, embedder, chunks_of("acme", "keys", KEYS + " Twice.", version="v2"))
    await store.delete_document("acme", "keys", keep_versions=["v2"])
    assert await search_ids(store, embedder, "acme", KEYS) == [("keys", "v2", 0)]


async def test_delete_only_named_versions_keeps_the_others(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A superseded version is purged while the version being indexed beside it stays."""
    store = await open_store()
    await index_chunks(store, embedder, chunks_of("acme", "keys", KEYS, version="v1"))
    await index_chunks(store, embedder, chunks_of("acme", "keys", KEYS + " Twice.", version="v2"))
    await store.delete_document("acme", "keys", only_versions=["v1"])
    assert await search_ids(store, embedder, "acme", KEYS) == [("keys", "v2", 0)]


async def test_upserting_the_same_chunks_again_does_not_duplicate_them(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A retried ingest job leaves one copy of each chunk."""
    store = await open_store()
    long_text = KEYS + "\n\n" + " ".join(f"Step {i} of the rotation." for i in range(40))
    chunks = chunks_of("acme", "keys", long_text)
    await index_chunks(store, embedder, chunks)
    first = await search_ids(store, embedder, "acme", "rotation step")
    await index_chunks(store, embedder, chunks)
    second = await search_ids(store, embedder, "acme", "rotation step")
    assert second == first
    assert sorted(second) == [("keys", "v1", i) for i in range(len(chunks))]


async def test_equal_scores_come_back_in_document_and_chunk_order(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """Identical chunks rank the same way on every query, so prompts and caches are stable."""
    store = await open_store()
    for document_id in ["d3", "d1", "d2", "d0"]:
        await index_chunks(store, embedder, chunks_of("acme", document_id, KEYS))
    ranked = await search_ids(store, embedder, "acme", "signing key")
    top_two = await search_ids(store, embedder, "acme", "signing key", limit=2)
    assert ranked == [("d0", "v1", 0), ("d1", "v1", 0), ("d2", "v1", 0), ("d3", "v1", 0)]
    assert top_two == ranked[:2]


async def test_data_survives_close_and_reopen(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A worker restart finds the chunks indexed before it (the folder lock is released)."""
    store = await open_store()
    await index_chunks(store, embedder, chunks_of("acme", "keys", KEYS))
    await store.aclose()
    assert await store.ping() is False
    reopened = await open_store()
    assert await reopened.ping() is True
    assert await search_ids(reopened, embedder, "acme", KEYS) == [("keys", "v1", 0)]


async def test_collection_with_another_vector_size_is_refused_clearly(
    open_store: OpenStore,
) -> None:
    """Switching embedders without a new collection fails at startup, naming both sizes."""
    store = await open_store(dim=256)
    await store.aclose()
    with pytest.raises(CollectionMismatchError, match=r"'ragq_\w+' holds 256-dim .* 384-dim"):
        await open_store(dim=384)
    reopened = await open_store(dim=256)  # the failed open released the folder
    assert await reopened.ping() is True


async def test_local_mode_calls_run_off_the_event_loop_thread(
    open_store: OpenStore, embedder: WordLlamaEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local-mode searches run on the store's own thread, so the worker's loop stays free."""
    threads: list[str] = []
    original = QdrantClient.query_batch_points

    def spy(self: QdrantClient, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(QdrantClient, "query_batch_points", spy)
    store = await open_store()
    await search_ids(store, embedder, "acme", "anything")
    assert [name.startswith("ragq-qdrant") for name in threads] == [True]


# A release note that mentions an error code among unrelated news, and passages about the
# same topic as the question that never name the code: WordLlama ranks the note last.


def _create_dense_only_collection(path: Path, name: str) -> None:
    """A collection as ragq made it before hybrid search: one dense vector, no sparse one."""
    client = QdrantClient(path=str(path))
    try:
        client.create_collection(
            name,
            vectors_config={
                "dense": models.VectorParams(size=256, distance=models.Distance.COSINE)
            },
        )
    finally:
        client.close()


async def test_collection_without_bm25_vectors_is_refused_clearly(
    open_store: OpenStore, store_settings: Settings
) -> None:
    """A collection made by an older ragq fails at startup with what to do, not at search."""
    _create_dense_only_collection(store_settings.qdrant_path, store_settings.collection_name)
    with pytest.raises(CollectionMismatchError) as refused:
        await open_store()
    message = str(refused.value)
    assert f"'{store_settings.collection_name}'" in message
    assert "'bm25' sparse vector" in message
    assert "RAGQ_QDRANT_COLLECTION" in message
    assert str(store_settings.qdrant_path) in message


async def test_search_arguments_are_checked(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A limit or per-document cap below one is a caller's bug, reported as such."""
    store = await open_store()
    with pytest.raises(ValueError, match="limit"):
        await search_ids(store, embedder, "acme", "keys", limit=0)
    with pytest.raises(ValueError, match="max_per_document"):
        await search_ids(store, embedder, "acme", "keys", max_per_document=0)
