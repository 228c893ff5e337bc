"""Chunk stores for the vector store tests: fixtures opening them on Qdrant's local mode
with the real WordLlama embedder, and helpers to make, index and search chunks.

The fixtures are registered under their short names (`store_settings`, `embedder`,
`open_store`) by tests/integration/conftest.py, which imports the `*_fixture` functions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from shared.schemas.common import Scalar
from workers.rag.chunking import chunk_text
from workers.rag.embeddings import WordLlamaEmbedder
from workers.rag.points import StoredChunk
from workers.rag.vectorstore import ChunkStore

OpenStore = Callable[..., Awaitable[ChunkStore]]
KEYS = "## Keys\n\nRotate the signing key with `vault rotate`, then retire the old key."
LUNCH = "## Lunch\n\nThe cafeteria serves lunch from noon until two, with soup on Fridays."


@pytest.fixture(name="store_settings")
def store_settings_fixture(tmp_path: Path) -> Settings:
    """Settings with an embedded Qdrant in a fresh folder."""
    return Settings(_env_file=None, qdrant_path=tmp_path / "q", qdrant_url="")


@pytest.fixture(name="embedder", scope="module")
def embedder_fixture() -> Iterator[WordLlamaEmbedder]:
    """The real default embedder, on its own executor."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-embed") as pool:
        yield WordLlamaEmbedder.load(pool)


@pytest.fixture(name="open_store")
async def open_store_fixture(store_settings: Settings) -> AsyncIterator[OpenStore]:
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


def chunks_of(
    tenant: str,
    document_id: str,
    text: str,
    *,
    version: str = "v1",
    metadata: Mapping[str, Scalar] | None = None,
) -> list[StoredChunk]:
    """The chunks of one document version, as ingestion would store them (small chunks)."""
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


async def index_chunks(
    store: ChunkStore, embedder: WordLlamaEmbedder, chunks: list[StoredChunk]
) -> None:
    """Embed and upsert the chunks."""
    await store.upsert(chunks, await embedder.embed([c.text for c in chunks]))


async def search_ids(
    store: ChunkStore, embedder: WordLlamaEmbedder, tenant: str, query: str, **kwargs: Any
) -> list[tuple[str, str, int]]:
    """(document id, version, chunk index) of the hits for `query`, best first (limit 50
    unless told; other keywords go to `ChunkStore.search`)."""
    [vector] = await embedder.embed([query])
    hits = await store.search(tenant, vector, text=query, limit=kwargs.pop("limit", 50), **kwargs)
    return [(h.chunk.document_id, h.chunk.version, h.chunk.index) for h in hits]
