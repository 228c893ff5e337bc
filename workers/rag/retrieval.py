"""Retrieval: embed the question, search the tenant's chunks, keep only visible versions.

The vector store may still hold chunks of deleted or replaced documents (purging is
asynchronous); the document records in Redis decide what is visible, so a delete or
replace takes effect for queries at once. Hybrid search (#3) plugs in at `search`.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.documents import DocumentStore
from shared.schemas.common import Scalar
from shared.schemas.jobs import Citation
from workers.rag.embeddings import Embedder
from workers.rag.vectorstore import ChunkStore, Hit

OVERFETCH = 3  # candidates per wanted chunk, to survive dropping invisible versions


class Retriever:
    """Finds the chunks an answer is built from."""

    def __init__(self, store: ChunkStore, embedder: Embedder, documents: DocumentStore) -> None:
        self._store = store
        self._embedder = embedder
        self._documents = documents

    async def retrieve(
        self, tenant: str, question: str, *, top_k: int, filters: Mapping[str, Scalar]
    ) -> list[Citation]:
        """The `top_k` best visible chunks, as citations numbered in rank order."""
        [vector] = await self._embedder.embed([question])
        hits = await self._store.search(
            tenant, vector, limit=top_k * OVERFETCH + 10, filters=dict(filters)
        )
        visible = await self._documents.visible_versions(
            tenant, sorted({h.chunk.document_id for h in hits})
        )
        kept = [h for h in hits if visible.get(h.chunk.document_id) == h.chunk.version][:top_k]
        return [_citation(rank, hit) for rank, hit in enumerate(kept, start=1)]


def _citation(rank: int, hit: Hit) -> Citation:
    c = hit.chunk
    return Citation(
        index=rank,
        document_id=c.document_id,
        chunk_id=c.chunk_id,
        title=c.title,
        text=c.text,
        start=c.start,
        end=c.end,
        score=round(hit.score, 6),
        rank=rank,
        section=c.section,
    )
