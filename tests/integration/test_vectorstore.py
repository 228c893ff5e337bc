"""The chunk store on Qdrant's local mode with real WordLlama vectors: tenant scoping,
filters, deletes, idempotent upserts, stable order, persistence, and dense, BM25 and
hybrid search."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient, models

from shared.config import Settings
from workers.rag.chunking import chunk_text
from workers.rag.embeddings import WordLlamaEmbedder
from workers.rag.vectorstore import (
    ChunkStore,
    CollectionMismatchError,
    Scalar,
    SearchTuning,
    StoredChunk,
)

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
    """Open chunk stores (256-dim unless told, settings overridden by keyword); every one is
    closed after the test."""
    opened: list[ChunkStore] = []

    async def open_(*, dim: int = 256, **settings: Any) -> ChunkStore:
        store = await ChunkStore.open(store_settings.model_copy(update=settings), dim=dim)
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
    hits = await store.search(tenant, vector, text=query, limit=kwargs.pop("limit", 50), **kwargs)
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
    chunks = _chunks("acme", "keys", KEYS, metadata={"product": "vault", "year": 2024})
    await _index(store, embedder, chunks)
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
    await _search(store, embedder, "acme", "anything")
    assert [name.startswith("ragq-qdrant") for name in threads] == [True]


# A release note that mentions an error code among unrelated news, and passages about the
# same topic as the question that never name the code: WordLlama ranks the note last.
RELEASE_NOTE = (
    "The cafeteria now serves soup on Fridays, the parking garage opens at seven, and the"
    " fix for VLT-4031 shipped. Badges are renewed in March; the gym closes on Sundays."
)
ROTATION_PASSAGES = {
    "rollover": "Rotating a signing key fails while a consumer still pins the old key: unpin it.",
    "signing": "A signing key rotation is blocked until every consumer trusts the new key.",
    "rotations": "Key rotations break when consumers pin the retiring key; update them first.",
    "keyring": "If the rotation of a key fails, find the consumer that still pins the old key.",
    "retry": "Retry a failed key rotation once no consumer pins the old key any more.",
}
CODE_QUESTION = "Why does the signing key rotation fail with VLT-4031?"


async def _index_code_corpus(store: ChunkStore, embedder: WordLlamaEmbedder) -> None:
    chunks = _chunks("acme", "notes", RELEASE_NOTE)
    for document_id, text in ROTATION_PASSAGES.items():
        chunks += _chunks("acme", document_id, text)
    await _index(store, embedder, chunks)


async def test_hybrid_search_finds_an_exact_identifier_that_dense_search_misses(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A question naming an error code finds the one chunk containing it, though that chunk
    reads like nothing else in the question."""
    store = await open_store()
    await _index_code_corpus(store, embedder)

    async def top(mode: str, limit: int) -> list[str]:
        found = await _search(store, embedder, "acme", CODE_QUESTION, mode=mode, limit=limit)
        return [document_id for document_id, _, _ in found]

    dense_all = await top("dense", 10)
    assert "notes" not in await top("dense", 3)
    assert dense_all[-1] == "notes"
    assert (await top("sparse", 3))[0] == "notes"
    assert "notes" in await top("hybrid", 3)


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
async def test_each_search_mode_ranks_the_best_match_first(
    open_store: OpenStore, embedder: WordLlamaEmbedder, mode: str
) -> None:
    """Dense, BM25 and hybrid search each put the chunk that answers the question first."""
    store = await open_store()
    await _index(store, embedder, _chunks("acme", "keys", KEYS) + _chunks("acme", "lunch", LUNCH))
    found = await _search(store, embedder, "acme", "When is soup served for lunch?", mode=mode)
    assert found[0] == ("lunch", "v1", 0)


async def test_sparse_search_needs_no_vector_and_dense_search_does(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """BM25 search works from the question's words alone; the other modes need its vector."""
    store = await open_store()
    await _index(store, embedder, _chunks("acme", "keys", KEYS) + _chunks("acme", "lunch", LUNCH))
    hits = await store.search("acme", None, text="vault rotate", limit=5, mode="sparse")
    assert [h.chunk.document_id for h in hits] == ["keys"]
    for mode in ("dense", "hybrid"):
        with pytest.raises(ValueError, match="vector"):
            await store.search("acme", None, text="vault rotate", limit=5, mode=mode)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        await store.search("acme", None, text="vault", limit=5, mode="fuzzy")  # type: ignore[arg-type]


async def test_a_question_of_only_stopwords_still_gets_dense_results_in_hybrid_mode(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A question with no searchable word finds nothing by BM25, and hybrid falls back to
    the dense ranking instead of failing."""
    store = await open_store()
    await _index(store, embedder, _chunks("acme", "keys", KEYS) + _chunks("acme", "lunch", LUNCH))
    assert await _search(store, embedder, "acme", "what is it?", mode="sparse") == []
    dense = await _search(store, embedder, "acme", "what is it?", mode="dense")
    assert await _search(store, embedder, "acme", "what is it?", mode="hybrid") == dense


async def test_title_and_section_words_find_a_chunk_whose_text_lacks_them(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A continuation chunk is found by its document's title and section heading."""
    store = await open_store()
    chunk = StoredChunk(
        tenant="acme",
        document_id="runbook",
        version="v1",
        index=3,
        start=0,
        end=23,
        text="Page the on-call first.",
        title="Vault runbook",
        section="Emergency procedure",
        metadata={},
    )
    await _index(store, embedder, [chunk, *_chunks("acme", "lunch", LUNCH)])
    found = await _search(store, embedder, "acme", "vault emergency", mode="sparse")
    assert found == [("runbook", "v1", 3)]


LONG_ROTATION = "\n\n".join(
    f"Rotation step {i}: the rotation of one key, then the rotation of its secret."
    for i in range(120)
)


async def test_max_per_document_leaves_room_for_other_documents(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A document with many matching chunks takes at most `max_per_document` places, and
    the others still fill the limit."""
    store = await open_store()
    long_doc = _chunks("acme", "long", LONG_ROTATION)
    others = _chunks("acme", "a", "The rotation policy applies to every signing key we hold.")
    others += _chunks("acme", "b", "Each quarter the on-call rotation moves to another team.")
    await _index(store, embedder, long_doc + others)
    assert len(long_doc) > 20  # more than a first fetch holds, so the store fetches again
    for mode in ("sparse", "hybrid", "dense"):
        capped = await _search(store, embedder, "acme", "rotation", mode=mode, limit=3,
                               max_per_document=1)  # fmt: skip
        assert sorted(d for d, _, _ in capped) == ["a", "b", "long"], mode
        two = await _search(store, embedder, "acme", "rotation", mode=mode, limit=5,
                            max_per_document=2)  # fmt: skip
        assert sorted(d for d, _, _ in two) == ["a", "b", "long", "long"], mode
    for mode in ("sparse", "hybrid"):
        uncapped = await _search(store, embedder, "acme", "rotation", mode=mode, limit=3)
        assert [d for d, _, _ in uncapped] == ["long", "long", "long"], mode


async def test_max_per_document_counts_each_version_apart(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """While a replaced version awaits its purge, its chunks do not use up the places of
    the version that replaced it."""
    store = await open_store()
    await _index(store, embedder, _chunks("acme", "long", LONG_ROTATION, version="v1"))
    await _index(store, embedder, _chunks("acme", "long", LONG_ROTATION, version="v2"))
    found = await _search(store, embedder, "acme", "rotation", limit=4, max_per_document=1)
    assert sorted(v for _, v, _ in found) == ["v1", "v2"]


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
async def test_metadata_filters_apply_to_both_ranked_lists(
    open_store: OpenStore, embedder: WordLlamaEmbedder, mode: str
) -> None:
    """A filtered search never returns a chunk outside the filter, even the one chunk that
    names the code the question asks about."""
    store = await open_store()
    await _index(store, embedder, _chunks("acme", "notes", RELEASE_NOTE, metadata={"p": "x"}))
    for document_id, text in ROTATION_PASSAGES.items():
        await _index(store, embedder, _chunks("acme", document_id, text, metadata={"p": "y"}))
    found = await _search(store, embedder, "acme", CODE_QUESTION, mode=mode, filters={"p": "y"})
    assert found
    assert "notes" not in {d for d, _, _ in found}
    only_x = await _search(store, embedder, "acme", CODE_QUESTION, mode=mode, filters={"p": "x"})
    assert only_x == [("notes", "v1", 0)]


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
async def test_every_search_mode_keeps_to_the_tenant(
    open_store: OpenStore, embedder: WordLlamaEmbedder, mode: str
) -> None:
    """Another tenant's chunk that matches the question word for word is never returned."""
    store = await open_store()
    await _index(store, embedder, _chunks("globex", "notes", RELEASE_NOTE))
    await _index(store, embedder, _chunks("acme", "lunch", LUNCH))
    found = await _search(store, embedder, "acme", RELEASE_NOTE, mode=mode)
    assert found == [("lunch", "v1", 0)]
    assert await _search(store, embedder, "initech", RELEASE_NOTE, mode=mode) == []
    with pytest.raises(ValueError, match="tenant"):
        await _search(store, embedder, "", RELEASE_NOTE, mode=mode)


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
async def test_identical_chunks_come_back_in_document_order_in_every_mode(
    open_store: OpenStore, embedder: WordLlamaEmbedder, mode: str
) -> None:
    """Identical chunks tie in every mode (hybrid too) and are ordered by document id."""
    store = await open_store()
    for document_id in ["d3", "d1", "d2", "d0"]:
        await _index(store, embedder, _chunks("acme", document_id, KEYS))
    ranked = await _search(store, embedder, "acme", "signing key", mode=mode)
    top_two = await _search(store, embedder, "acme", "signing key", mode=mode, limit=2)
    assert ranked == [("d0", "v1", 0), ("d1", "v1", 0), ("d2", "v1", 0), ("d3", "v1", 0)]
    assert top_two == ranked[:2]


async def test_equal_bm25_scores_of_different_chunks_come_back_in_document_order(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """Different chunks that BM25 scores the same are ordered by document id, not by chance."""
    store = await open_store()
    for document_id, word in [("d3", "alpha"), ("d1", "gamma"), ("d2", "delta")]:
        await _index(store, embedder, _chunks("acme", document_id, f"Rotation {word}."))
    hits = await store.search("acme", None, text="rotation", limit=2, mode="sparse")
    assert [h.chunk.document_id for h in hits] == ["d1", "d2"]
    assert hits[0].score == hits[1].score


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


@pytest.mark.parametrize(("weights", "alone"), [((1.0, 0.0), "dense"), ((0.0, 1.0), "sparse")])
async def test_rrf_weights_decide_how_much_each_ranking_counts(
    open_store: OpenStore,
    embedder: WordLlamaEmbedder,
    weights: tuple[float, float],
    alone: str,
) -> None:
    """With RAGQ_RRF_WEIGHTS giving one ranking no weight, hybrid ranks like the other."""
    store = await open_store(rrf_weights=weights)
    await _index_code_corpus(store, embedder)
    hybrid = await _search(store, embedder, "acme", CODE_QUESTION, mode="hybrid")
    assert hybrid == await _search(store, embedder, "acme", CODE_QUESTION, mode=alone)


def test_search_tuning_comes_from_the_settings(store_settings: Settings) -> None:
    """RRF weights, the RRF constant and BM25 parameters are read from the settings, and
    avgdl follows the chunk size unless set."""
    assert SearchTuning.from_settings(store_settings) == SearchTuning()
    tuned = store_settings.model_copy(
        update={"rrf_weights": (3.0, 1.0), "rrf_k": 60, "bm25_k1": 0.9, "bm25_b": 0.4}
    )
    assert SearchTuning.from_settings(tuned) == SearchTuning(
        rrf_weights=(3.0, 1.0), rrf_k=60, bm25_k1=0.9, bm25_b=0.4
    )
    bigger = store_settings.model_copy(update={"chunk_max_chars": 2400})
    assert SearchTuning.from_settings(bigger).bm25_avgdl == 160
    fixed = bigger.model_copy(update={"bm25_avgdl": 50.0})
    assert SearchTuning.from_settings(fixed).bm25_avgdl == 50


@pytest.mark.parametrize(
    "bad",
    [
        {"rrf_weights": (0.0, 0.0)},
        {"rrf_weights": (-1.0, 1.0)},
        {"rrf_k": 0},
        {"bm25_k1": -0.5},
        {"bm25_b": 2.0},
        {"bm25_avgdl": 0.0},
    ],
)
def test_nonsense_search_tuning_is_refused(bad: dict[str, Any]) -> None:
    """A tuning that cannot rank anything fails when the store is configured."""
    with pytest.raises(ValueError, match=r"rrf|BM25"):
        SearchTuning(**bad)


async def test_search_arguments_are_checked(
    open_store: OpenStore, embedder: WordLlamaEmbedder
) -> None:
    """A limit or per-document cap below one is a caller's bug, reported as such."""
    store = await open_store()
    with pytest.raises(ValueError, match="limit"):
        await _search(store, embedder, "acme", "keys", limit=0)
    with pytest.raises(ValueError, match="max_per_document"):
        await _search(store, embedder, "acme", "keys", max_per_document=0)
