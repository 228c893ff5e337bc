"""Retrieval: embed the question, search the tenant's chunks (dense and BM25, fused, by
default), keep only visible versions.

The vector store may still hold chunks of deleted or replaced documents (purging is
asynchronous); the document records in Redis decide what is visible, so a delete or
replace takes effect for queries at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shared.config import Settings
from shared.documents import DocumentStore
from shared.schemas.common import Scalar
from shared.schemas.jobs import Citation
from workers.rag.indexes import Indexes
from workers.rag.points import Hit
from workers.rag.vectorstore import SearchMode

OVERFETCH = 3  # candidates per wanted chunk, to survive dropping invisible versions
# Chunks one document may contribute: on data/deploy_eval.jsonl and Python's FAQ, 3 kept
# every answer-bearing chunk and let questions that need two documents see both more often
# (2 did that more but lost chunks holding the answer; 1 lost many).
MAX_CHUNKS_PER_DOCUMENT = 3


class Retriever:
    """Finds the chunks an answer is built from."""

    def __init__(
        self,
        indexes: Indexes,
        documents: DocumentStore,
        *,
        mode: SearchMode = "hybrid",
        max_chunks_per_document: int | None = MAX_CHUNKS_PER_DOCUMENT,
    ) -> None:
        """`max_chunks_per_document=None` lets one document fill every place."""
        self._indexes = indexes
        self._documents = documents
        self._mode: SearchMode = mode
        self._max_per_document = max_chunks_per_document

    @classmethod
    def from_settings(
        cls, settings: Settings, indexes: Indexes, documents: DocumentStore
    ) -> Retriever:
        """A retriever searching as RAGQ_RETRIEVAL_MODE and RAGQ_MAX_CHUNKS_PER_DOCUMENT say
        (0 there: no limit)."""
        return cls(
            indexes,
            documents,
            mode=settings.retrieval_mode,
            max_chunks_per_document=settings.max_chunks_per_document or None,
        )

    async def retrieve(
        self,
        tenant: str,
        question: str,
        *,
        top_k: int,
        filters: Mapping[str, Scalar],
    ) -> list[Citation]:
        """The `top_k` best visible chunks, as citations numbered in rank order, from the
        collection of the embedding model that serves the tenant now."""
        citations, _ = await self.retrieve_versioned(tenant, question, top_k=top_k, filters=filters)
        return citations

    async def retrieve_versioned(
        self,
        tenant: str,
        question: str,
        *,
        top_k: int,
        filters: Mapping[str, Scalar],
    ) -> tuple[list[Citation], dict[str, str]]:
        """`retrieve`'s citations, and the visible version of each cited document (the
        version its cited chunks belong to), as the filter read them."""
        index = await self._indexes.serving(tenant)
        vector: Sequence[float] | None = None
        if self._mode != "sparse":  # BM25 alone needs no embedding
            [vector] = await index.embedder.embed([question], query=True)
        hits = await index.store.search(
            tenant,
            vector,
            text=question,
            limit=top_k * OVERFETCH + 10,
            filters=dict(filters),
            mode=self._mode,
            max_per_document=self._max_per_document,
        )
        visible = await self._documents.visible_versions(
            tenant, sorted({h.chunk.document_id for h in hits}), cached=True
        )
        kept = [h for h in hits if visible.get(h.chunk.document_id) == h.chunk.version][:top_k]
        cited = {h.chunk.document_id: h.chunk.version for h in kept}
        return [_citation(rank, hit) for rank, hit in enumerate(kept, start=1)], cited


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
