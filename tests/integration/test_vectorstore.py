"""The chunk store on Qdrant's local mode with real WordLlama vectors: tenant scoping,
filters, deletes, idempotent upserts, stable order and persistence."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from shared.config import Settings
from workers.rag.chunking import chunk_text
from workers.rag.embeddings import WordLlamaEmbedder
from workers.rag.vectorstore import ChunkStore, CollectionMismatchError, Scalar, StoredChunk

pytestmark = pytest.mark.integration

OpenStore = Callable[..., Awaitable[ChunkStore]]


@pytest.fixture
def store_settings(tmp_path: Path) -> Settings:
    """Settings with an embedded Qdrant in a fresh folder."""
    return Settings(_env_file=None, qdrant_path=tmp_path / "q", qdrant_url="")


@pytest.fixture(scope="module")
def embedder() -> Iterator[WordLlamaEmbedder]:
    """The real default embedder, on its own executor."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-embed") as pool:
        yield WordLlamaEmbedder.load(pool)


@pytest.fixture
async def open_store(store_settings: Settings) -> AsyncIterator[OpenStore]:
    """Open chunk stores (256-dim unless told); every one is closed after the test."""
    opened: list[ChunkStore] = []

    async def open_(*, dim: int = 256) -> ChunkStore:
        store = await ChunkStore.open(store_settings, dim=dim)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.aclose()


def _chunks(
    tenant: str,
    document_id: str,
    text: str,
    *,
    version: str = "v1",
    metadata: Mapping[str, Scalar] | None = None,
) -> list[StoredChunk]:
    return [
        StoredChunk(
            tenant=tenant,
            document_id=document_id,
            version=version,
            index=c.index,
            start=c.start,
            end=c.end,
            text=c.text,
            title=f"Title of {document_id}",
            section=c.section,
            metadata=dict(metadata or {}),
        )
        for c in chunk_text(text, max_chars=200, overlap_chars=30)
    ]


async def _index(store: ChunkStore, embedder: WordLlamaEmbedder, chunks: list[StoredChunk]) -> None:
    await store.upsert(chunks, await embedder.embed([c.text for c in chunks]))


async def _search(
    store: ChunkStore, embedder: WordLlamaEmbedder, tenant: str, query: str, **kwargs: Any
) -> list[tuple[str, str, int]]:
    [vector] = await embedder.embed([query])
    hits = await store.search(tenant, vector, limit=kwargs.pop("limit", 50), **kwargs)
    return [(h.chunk.document_id, h.chunk.version, h.chunk.index) for h in hits]


KEYS = "## Keys\n\nRotate the signing key with `vault rotate`, then retire the old key."
LUNCH = "## Lunch\n\nThe cafeteria serves lunch from noon until two, with soup on Fridays."


async def test_a_tenant_never_sees_another_tenants_chunks(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """Searching as one tenant returns only that tenant's chunks, even for the other's text."""
    store = await open_store()
    await _index(store, embedder, _chunks("acme", "keys", KEYS))
    await _index(store, embedder, _chunks("globex", "keys", KEYS) + _chunks("globex", "x", LUNCH))
    [vector] = await embedder.embed([LUNCH])
    hits = await store.search("acme", vector, limit=10)
    assert [(h.chunk.tenant, h.chunk.document_id) for h in hits] == [("acme", "keys")]
    assert await store.search("initech", vector, limit=10) == []
    with pytest.raises(ValueError, match="tenant"):
        await store.search("", vector, limit=10)


async def test_hits_carry_the_stored_chunk_unchanged(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A citation gets back exactly the text, offsets, section and metadata that were stored."""
    store = await open_store()
    chunks = _chunks("acme", "keys", KEYS, metadata={"product": "vault", "year": 2024})
    await _index(store, embedder, chunks)
    [vector] = await embedder.embed(["rotate the signing key"])
    [hit] = await store.search("acme", vector, limit=5)
    assert hit.chunk == chunks[0]
    assert hit.chunk.chunk_id == "keys:0"
    assert 0.0 < hit.score <= 1.0 + 1e-6


async def test_metadata_filters_keep_only_matching_chunks(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """Filters match metadata values of every scalar type, and keys that need quoting."""
    store = await open_store()
    await _index(
        store,
        embedder,
        _chunks("acme", "a", KEYS, metadata={"product": "vault", "year": 2024, "team.name": "x"})
        + _chunks("acme", "b", KEYS, metadata={"product": "nomad", "public": True, "w": 0.5})
        + _chunks("acme", "c", LUNCH, metadata={"product": "vault", "public": False}),
    )

    async def docs(**filters: Scalar) -> list[str]:
        return [d for d, _, _ in await _search(store, embedder, "acme", KEYS, filters=filters)]

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
    await _index(store, embedder, _chunks("acme", "keys", KEYS, version="v1"))
    await _index(store, embedder, _chunks("acme", "keys", KEYS, version="v2"))
    await _index(store, embedder, _chunks("acme", "lunch", LUNCH))
    await _index(store, embedder, _chunks("globex", "keys", KEYS))
    await store.delete_document("acme", "keys")
    assert await _search(store, embedder, "acme", KEYS) == [("lunch", "v1", 0)]
    assert await _search(store, embedder, "globex", KEYS) == [("keys", "v1", 0)]


async def test_delete_document_except_version_keeps_the_new_version(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """After a re-index, old versions are purged and the current one stays searchable."""
    store = await open_store()
    await _index(store, embedder, _chunks("acme", "keys", KEYS, version="v1"))
    await _index(store, embedder, _chunks("acme", "keys", KEYS + " Twice.", version="v2"))
    await store.delete_document("acme", "keys", keep_versions=["v2"])
    assert await _search(store, embedder, "acme", KEYS) == [("keys", "v2", 0)]


async def test_delete_only_named_versions_keeps_the_others(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A superseded version is purged while the version being indexed beside it stays."""
    store = await open_store()
    await _index(store, embedder, _chunks("acme", "keys", KEYS, version="v1"))
    await _index(store, embedder, _chunks("acme", "keys", KEYS + " Twice.", version="v2"))
    await store.delete_document("acme", "keys", only_versions=["v1"])
    assert await _search(store, embedder, "acme", KEYS) == [("keys", "v2", 0)]


async def test_upserting_the_same_chunks_again_does_not_duplicate_them(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A retried ingest job leaves one copy of each chunk."""
    store = await open_store()
    long_text = KEYS + "\n\n" + " ".join(f"Step {i} of the rotation." for i in range(40))
    chunks = _chunks("acme", "keys", long_text)
    await _index(store, embedder, chunks)
    first = await _search(store, embedder, "acme", "rotation step")
    await _index(store, embedder, chunks)
    second = await _search(store, embedder, "acme", "rotation step")
    assert second == first
    assert sorted(second) == [("keys", "v1", i) for i in range(len(chunks))]


async def test_equal_scores_come_back_in_document_and_chunk_order(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """Identical chunks rank the same way on every query, so prompts and caches are stable."""
    store = await open_store()
    for document_id in ["d3", "d1", "d2", "d0"]:
        await _index(store, embedder, _chunks("acme", document_id, KEYS))
    ranked = await _search(store, embedder, "acme", "signing key")
    top_two = await _search(store, embedder, "acme", "signing key", limit=2)
    assert ranked == [("d0", "v1", 0), ("d1", "v1", 0), ("d2", "v1", 0), ("d3", "v1", 0)]
    assert top_two == ranked[:2]


async def test_data_survives_close_and_reopen(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A worker restart finds the chunks indexed before it (the folder lock is released)."""
    store = await open_store()
    await _index(store, embedder, _chunks("acme", "keys", KEYS))
    await store.aclose()
    assert await store.ping() is False
    reopened = await open_store()
    assert await reopened.ping() is True
    assert await _search(reopened, embedder, "acme", KEYS) == [("keys", "v1", 0)]


async def test_collection_with_another_vector_size_is_refused_clearly(
    open_store: OpenStore,
) -> None:
    """Switching embedders without a new collection fails at startup, naming both sizes."""
    store = await open_store(dim=256)
    await store.aclose()
    with pytest.raises(CollectionMismatchError, match=r"'ragq_chunks' holds 256-dim .* 384-dim"):
        await open_store(dim=384)
    reopened = await open_store(dim=256)  # the failed open released the folder
    assert await reopened.ping() is True


async def test_local_mode_calls_run_off_the_event_loop_thread(
    open_store: OpenStore, embedder: WordLlamaEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local-mode searches run on the store's own thread, so the worker's loop stays free."""
    threads: list[str] = []
    original = QdrantClient.query_points

    def spy(self: QdrantClient, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(QdrantClient, "query_points", spy)
    store = await open_store()
    await _search(store, embedder, "acme", "anything")
    assert [name.startswith("ragq-qdrant") for name in threads] == [True]
