"""The chunk store: documents' chunks with a dense and a BM25 vector each, in one Qdrant
collection, searched densely, lexically or both (fused by reciprocal rank).

Every query is scoped to one tenant. The collection and its client are
`workers.rag.qdrant`, the chunk records and their points `workers.rag.points`, payload
filters `workers.rag.filters`, and ranking (fusion, ties, the per-document cap)
`workers.rag.fusion`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, get_args

from qdrant_client import models

from shared.config import Settings
from shared.schemas.common import Scalar
from workers.rag import sparse
from workers.rag.filters import any_of, equals, search_filter, tenant_condition
from workers.rag.fusion import SearchTuning, collapse, fuse, fuse_scores, rank_key
from workers.rag.points import Hit, StoredChunk, indexed_text, payload, point_id, stored_chunk
from workers.rag.qdrant import DENSE, SPARSE, QdrantCollection

SearchMode = Literal["hybrid", "dense", "sparse"]
_UPSERT_BATCH = 256  # points per upsert request
_TIE_SLACK = 8  # extra hits fetched so equal scores at the cut-off are broken by our order
_MAX_FETCH = 2000  # hits asked for at most, when collapsing per document needs more
# each list of a hybrid search: deep enough for fusion to reorder, and the same depth for
# every request size, so a question ranks the same whatever `limit` it comes with
HYBRID_DEPTH = 200


class ChunkStore:
    """Tenant-scoped chunk storage and hybrid (dense + BM25) search over one Qdrant collection."""

    def __init__(
        self, collection: QdrantCollection, *, dim: int, tuning: SearchTuning | None = None
    ) -> None:
        """Use `ChunkStore.open`; this only wires an already opened collection."""
        self._collection = collection
        self._dim = dim
        self._tuning = tuning or SearchTuning()

    @classmethod
    async def open(cls, settings: Settings, *, dim: int) -> ChunkStore:
        """Connect (or open the local folder) and make sure the collection fits `dim`."""
        collection = await QdrantCollection.open(settings)
        try:
            await collection.ensure(dim)
        except BaseException:
            await collection.aclose()
            raise
        return cls(collection, dim=dim, tuning=SearchTuning.from_settings(settings))

    async def sibling(self, settings: Settings, *, dim: int) -> ChunkStore:
        """The collection `settings` name (another embedding model's), through this store's
        client, created if missing; closing it leaves this store open."""
        collection = self._collection.sibling(settings.collection_name)
        await collection.ensure(dim)
        return ChunkStore(collection, dim=dim, tuning=SearchTuning.from_settings(settings))

    @property
    def collection_name(self) -> str:
        """The Qdrant collection this store writes and searches."""
        return self._collection.name

    async def scroll(
        self, tenant: str, *, offset: str | None = None, limit: int = _UPSERT_BATCH
    ) -> tuple[list[StoredChunk], str | None]:
        """A page of the tenant's chunks and the offset of the next page (None: the last)."""
        points, next_offset = await self._collection.call(
            "scroll",
            collection_name=self._collection.name,
            scroll_filter=models.Filter(must=[tenant_condition(tenant)]),
            limit=limit,
            offset=offset,
            with_payload=True,
            with_vectors=False,
        )
        chunks = [stored_chunk(p.payload or {}) for p in points]
        return chunks, None if next_offset is None else str(next_offset)

    async def drop(self) -> None:
        """Delete the collection itself, then close this store."""
        await self._collection.drop()
        await self.aclose()

    async def upsert(
        self, chunks: Sequence[StoredChunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        """Store chunks with their dense vectors, adding each one's BM25 vector; storing the
        same chunk again replaces it."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if self._collection.closed:
            raise RuntimeError("the chunk store is closed")
        dense = [self._checked(vector) for vector in vectors]
        # Tokenizing is CPU work: off the event loop (on the store's thread in local mode).
        bm25 = await self._collection.run(self._encode_documents, list(chunks))
        points = [
            models.PointStruct(
                id=point_id(chunk),
                vector={DENSE: vector, SPARSE: sparse_vector},
                payload=payload(chunk),
            )
            for chunk, vector, sparse_vector in zip(chunks, dense, bm25, strict=True)
        ]
        for first in range(0, len(points), _UPSERT_BATCH):
            await self._collection.call(
                "upsert",
                collection_name=self._collection.name,
                points=points[first : first + _UPSERT_BATCH],
                wait=True,
            )

    async def search(
        self,
        tenant: str,
        vector: Sequence[float] | None,
        *,
        text: str,
        limit: int,
        filters: Mapping[str, Scalar] | None = None,
        mode: SearchMode = "hybrid",
        max_per_document: int | None = None,
    ) -> list[Hit]:
        """The tenant's `limit` best chunks whose metadata equals every filter value.

        `mode` ranks by the question's embedding `vector` ("dense"), by BM25 over the
        question `text` ("sparse", where `vector` may be None), or by both lists fused by
        weighted reciprocal rank ("hybrid"; scores are then RRF scores). With
        `max_per_document`, a document version contributes at most that many chunks and
        more are fetched so that `limit` remain when the tenant has them. Ordered by score,
        then document id and chunk index, so equal scores come back in the same order
        every time.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if max_per_document is not None and max_per_document < 1:
            raise ValueError(f"max_per_document must be at least 1, not {max_per_document}")
        if mode not in get_args(SearchMode):
            raise ValueError(f"mode must be one of {get_args(SearchMode)}, not {mode!r}")
        query_filter = search_filter(tenant, filters)
        dense: list[float] | None = None
        if mode != "sparse":
            if vector is None:
                raise ValueError(f"{mode} search needs the question's vector")
            dense = self._checked(vector)
        indices, values = sparse.encode_query(text) if mode != "dense" else ([], [])
        bm25 = models.SparseVector(indices=indices, values=values)
        fetch = limit + _TIE_SLACK if max_per_document is None else 2 * limit + _TIE_SLACK
        while True:
            hits, exhausted = await self._candidates(mode, dense, bm25, query_filter, fetch)
            kept = collapse(hits, max_per_document)
            if exhausted or fetch >= _MAX_FETCH:
                break
            # Enough when `limit` hits are kept and no unseen hit can tie the last of them
            # (in hybrid mode every candidate's fused score is known: the lists hold them).
            if len(kept) >= limit and (mode == "hybrid" or hits[-1].score < kept[limit - 1].score):
                break
            fetch = min(4 * fetch, _MAX_FETCH)
        return kept[:limit]

    async def delete_document(
        self,
        tenant: str,
        document_id: str,
        *,
        only_versions: Sequence[str] | None = None,
        keep_versions: Sequence[str] = (),
    ) -> None:
        """Remove a document's chunks: all of them, only those of `only_versions`,
        or all but those of `keep_versions`."""
        must: list[models.Condition] = [
            tenant_condition(tenant),
            equals("document_id", document_id),
        ]
        if only_versions is not None:
            if not only_versions:
                return
            must.append(any_of("version", only_versions))
        must_not: list[models.Condition] = (
            [any_of("version", keep_versions)] if keep_versions else []
        )
        selector = models.FilterSelector(filter=models.Filter(must=must, must_not=must_not))
        await self._collection.call(
            "delete", collection_name=self._collection.name, points_selector=selector, wait=True
        )

    async def ping(self) -> bool:
        """True when Qdrant answers and the collection exists."""
        if self._collection.closed:
            return False
        try:
            name = self._collection.name
            return bool(await self._collection.call("collection_exists", collection_name=name))
        except Exception:  # a health probe reports failure, whatever its cause
            return False

    async def aclose(self) -> None:
        """Close the client; in local mode this releases the storage folder."""
        await self._collection.aclose()

    async def _candidates(
        self,
        mode: SearchMode,
        dense: list[float] | None,
        bm25: models.SparseVector,
        query_filter: models.Filter,
        fetch: int,
    ) -> tuple[list[Hit], bool]:
        """Up to `fetch` hits of one list, or the fusion of both lists, best first; and
        whether the lists were exhausted (asking for more would find nothing new)."""

        def request(
            query: list[float] | models.SparseVector | None, using: str, limit: int
        ) -> models.QueryRequest:
            return models.QueryRequest(
                query=query, using=using, filter=query_filter, limit=limit, with_payload=True
            )

        if mode == "dense":
            requests = [request(dense, DENSE, fetch)]
        elif mode == "sparse":
            requests = [request(bm25, SPARSE, fetch)]
        else:  # each list deeper than the result: fusion only reorders what the lists hold
            depth = max(2 * fetch, HYBRID_DEPTH)
            requests = [request(dense, DENSE, depth), request(bm25, SPARSE, depth)]
        responses: list[models.QueryResponse] = await self._collection.call(
            "query_batch_points", collection_name=self._collection.name, requests=requests
        )
        lists = [response.points for response in responses]
        if mode == "hybrid":
            tuning = self._tuning
            if tuning.fusion == "rank":
                hits = fuse(lists, tuning.rrf_weights, tuning.rrf_k)
            else:
                hits = fuse_scores(lists, tuning.score_weights)
        else:
            hits = [Hit(chunk=stored_chunk(p.payload or {}), score=p.score) for p in lists[0]]
        hits.sort(key=rank_key)
        exhausted = all(len(p) < (r.limit or 0) for p, r in zip(lists, requests, strict=True))
        return hits, exhausted

    def _encode_documents(self, chunks: list[StoredChunk]) -> list[models.SparseVector]:
        """BM25 vectors of the chunks' title, section heading and text."""
        tuning = self._tuning
        vectors = []
        for chunk in chunks:
            indices, values = sparse.encode_document(
                indexed_text(chunk),
                k1=tuning.bm25_k1,
                b=tuning.bm25_b,
                avgdl=tuning.bm25_avgdl,
            )
            vectors.append(models.SparseVector(indices=indices, values=values))
        return vectors

    def _checked(self, vector: Sequence[float]) -> list[float]:
        if len(vector) != self._dim:
            raise ValueError(f"vector has {len(vector)} dimensions, the collection {self._dim}")
        return [float(x) for x in vector]
