"""The chunk store: documents' chunks with a dense and a BM25 vector each, in one Qdrant
collection, searched densely, lexically or both (fused by reciprocal rank).

Every query is scoped to one tenant. Qdrant runs as a server when `qdrant_url` is set,
otherwise in qdrant-client's local mode inside this process.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import uuid
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, get_args

from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from shared.config import Settings
from shared.schemas.common import Scalar as Scalar  # str | int | float | bool, re-exported
from workers.rag import sparse

DENSE = "dense"  # name of the dense vector in the collection
SPARSE = "bm25"  # name of the sparse (BM25) vector in the collection
SearchMode = Literal["hybrid", "dense", "sparse"]
_UPSERT_BATCH = 256  # points per upsert request
_TIE_SLACK = 8  # extra hits fetched so equal scores at the cut-off are broken by our order
_MAX_FETCH = 2000  # hits asked for at most, when collapsing per document needs more
_INDEXED_FIELDS = ("tenant", "document_id")
_LOCAL_INDEX_WARNING = "Payload indexes have no effect in the local Qdrant"


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as stored: where it comes from (tenant, document, version) and its text."""

    tenant: str
    document_id: str
    version: str
    index: int
    start: int
    end: int
    text: str
    title: str
    section: str | None
    metadata: Mapping[str, Scalar]

    @property
    def chunk_id(self) -> str:
        return f"{self.document_id}:{self.index}"


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk and its similarity score (higher is closer)."""

    chunk: StoredChunk
    score: float


@dataclass(frozen=True, slots=True)
class SearchTuning:
    """BM25 parameters of stored sparse vectors and the weighting of hybrid fusion.

    Defaults measured with the default WordLlama embedder on data/deploy_eval.jsonl and on
    Python's FAQ: hybrid hit@5 0.841 and 0.665, against 0.797 and 0.630 with Qdrant's plain
    RRF (k=2, equal weights), 0.783 and 0.486 dense alone, 0.797 and 0.607 BM25 alone. BM25
    ranks better than WordLlama there, so its list weighs twice the dense one; a stronger
    embedder wants more dense weight. BM25 parameters apply to chunks as they are upserted:
    changing them means re-indexing.
    """

    rrf_weights: tuple[float, float] = (1.0, 2.0)  # dense list, sparse list
    rrf_k: int = 10  # RRF rank constant: rank r in a list of weight w adds 1 / (r/w + k - 1)
    bm25_k1: float = sparse.K1
    bm25_b: float = sparse.B
    bm25_avgdl: float = sparse.AVGDL

    def __post_init__(self) -> None:
        dense_w, sparse_w = self.rrf_weights
        if dense_w < 0 or sparse_w < 0 or dense_w + sparse_w == 0:
            raise ValueError(f"rrf_weights must be >= 0 and not both 0, not {self.rrf_weights}")
        if self.rrf_k < 1:
            raise ValueError(f"rrf_k must be at least 1, not {self.rrf_k}")
        sparse.encode_document("", k1=self.bm25_k1, b=self.bm25_b, avgdl=self.bm25_avgdl)

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchTuning:
        """The tuning the settings ask for (RAGQ_RRF_WEIGHTS, RAGQ_RRF_K, RAGQ_BM25_*)."""
        return cls(
            rrf_weights=settings.rrf_weights,
            rrf_k=settings.rrf_k,
            bm25_k1=settings.bm25_k1,
            bm25_b=settings.bm25_b,
            bm25_avgdl=settings.bm25_avgdl or sparse.default_avgdl(settings.chunk_max_chars),
        )


class CollectionMismatchError(RuntimeError):
    """The Qdrant collection exists with a vector layout this version cannot use."""


class ChunkStore:
    """Tenant-scoped chunk storage and hybrid (dense + BM25) search over one Qdrant collection."""

    def __init__(
        self,
        *,
        collection: str,
        dim: int,
        server: AsyncQdrantClient | None = None,
        local: QdrantClient | None = None,
        executor: ThreadPoolExecutor | None = None,
        tuning: SearchTuning | None = None,
        where: str = "",
    ) -> None:
        """Use `ChunkStore.open`; this only wires an already opened client."""
        self._collection = collection
        self._dim = dim
        self._server = server
        self._local = local
        self._executor = executor
        self._tuning = tuning or SearchTuning()
        self._where = where  # the local folder or server URL, for error messages
        self._closed = False

    @classmethod
    async def open(cls, settings: Settings, *, dim: int) -> ChunkStore:
        """Connect (or open the local folder) and make sure the collection fits `dim`."""
        if settings.qdrant_url:
            api_key = settings.qdrant_api_key
            server = AsyncQdrantClient(
                url=settings.qdrant_url,
                api_key=api_key.get_secret_value() if api_key else None,
                timeout=math.ceil(settings.qdrant_timeout_s),  # the client takes whole seconds
            )
            store = cls(
                collection=settings.collection_name,
                dim=dim,
                server=server,
                tuning=SearchTuning.from_settings(settings),
                where="on the Qdrant server (RAGQ_QDRANT_URL)",
            )
        else:
            # Local mode: the async client would run searches on the event loop, and a folder
            # admits one client, so the sync client lives on one thread that this store owns.
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragq-qdrant")
            path = str(settings.qdrant_path)
            try:
                loop = asyncio.get_running_loop()
                local = await loop.run_in_executor(
                    executor, functools.partial(QdrantClient, path=path)
                )
            except BaseException:
                executor.shutdown(wait=False)
                raise
            store = cls(
                collection=settings.collection_name,
                dim=dim,
                local=local,
                executor=executor,
                tuning=SearchTuning.from_settings(settings),
                where=f"in the folder {path} (RAGQ_QDRANT_PATH)",
            )
        try:
            await store._ensure_collection()
        except BaseException:
            await store.aclose()
            raise
        return store

    async def upsert(
        self, chunks: Sequence[StoredChunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        """Store chunks with their dense vectors, adding each one's BM25 vector; storing the
        same chunk again replaces it."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if self._closed:  # before the executor, which a closed store has shut down
            raise RuntimeError("the chunk store is closed")
        dense = [self._checked(vector) for vector in vectors]
        # Tokenizing is CPU work: off the event loop (on the store's thread in local mode).
        bm25 = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._encode_documents, list(chunks)
        )
        points = [
            models.PointStruct(
                id=_point_id(chunk),
                vector={DENSE: vector, SPARSE: sparse_vector},
                payload=_payload(chunk),
            )
            for chunk, vector, sparse_vector in zip(chunks, dense, bm25, strict=True)
        ]
        for first in range(0, len(points), _UPSERT_BATCH):
            await self._call(
                "upsert",
                collection_name=self._collection,
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
        query_filter = _filter(tenant, filters)
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
            kept = _collapse(hits, max_per_document)
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
            _tenant_condition(tenant),
            _equals("document_id", document_id),
        ]
        if only_versions is not None:
            if not only_versions:
                return
            must.append(_any_of("version", only_versions))
        must_not: list[models.Condition] = (
            [_any_of("version", keep_versions)] if keep_versions else []
        )
        selector = models.FilterSelector(filter=models.Filter(must=must, must_not=must_not))
        await self._call(
            "delete", collection_name=self._collection, points_selector=selector, wait=True
        )

    async def ping(self) -> bool:
        """True when Qdrant answers and the collection exists."""
        if self._closed:
            return False
        try:
            return bool(await self._call("collection_exists", collection_name=self._collection))
        except Exception:  # a health probe reports failure, whatever its cause
            return False

    async def aclose(self) -> None:
        """Close the client; in local mode this releases the storage folder."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            await self._server.close()
        if self._local is not None and self._executor is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._local.close)
            finally:
                self._executor.shutdown(wait=True)  # idle by now: close() was its last task

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
            depth = max(4 * fetch, 50)
            requests = [request(dense, DENSE, depth), request(bm25, SPARSE, depth)]
        responses: list[models.QueryResponse] = await self._call(
            "query_batch_points", collection_name=self._collection, requests=requests
        )
        lists = [response.points for response in responses]
        if mode == "hybrid":
            hits = _fuse(lists, self._tuning.rrf_weights, self._tuning.rrf_k)
        else:
            hits = [Hit(chunk=_stored_chunk(p.payload or {}), score=p.score) for p in lists[0]]
        hits.sort(key=_rank_key)
        exhausted = all(len(p) < (r.limit or 0) for p, r in zip(lists, requests, strict=True))
        return hits, exhausted

    def _encode_documents(self, chunks: list[StoredChunk]) -> list[models.SparseVector]:
        """BM25 vectors of the chunks' title, section heading and text."""
        tuning = self._tuning
        vectors = []
        for chunk in chunks:
            indices, values = sparse.encode_document(
                _indexed_text(chunk),
                k1=tuning.bm25_k1,
                b=tuning.bm25_b,
                avgdl=tuning.bm25_avgdl,
            )
            vectors.append(models.SparseVector(indices=indices, values=values))
        return vectors

    async def _ensure_collection(self) -> None:
        """Create the collection and its payload indexes, or check the existing one's size."""
        name = self._collection
        if not await self._call("collection_exists", collection_name=name):
            try:
                await self._call(
                    "create_collection",
                    collection_name=name,
                    vectors_config={
                        DENSE: models.VectorParams(size=self._dim, distance=models.Distance.COSINE)
                    },
                    sparse_vectors_config={
                        SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                    },
                )
            except UnexpectedResponse as exc:  # another worker created it first
                if exc.status_code != 409:
                    raise
        info = await self._call("get_collection", collection_name=name)
        vectors = info.config.params.vectors
        params = vectors.get(DENSE) if isinstance(vectors, Mapping) else None
        if params is None:
            raise CollectionMismatchError(
                f"Qdrant collection {name!r} has no {DENSE!r} vector; use another collection"
                " (RAGQ_QDRANT_COLLECTION) or delete this one"
            )
        if params.size != self._dim or params.distance != models.Distance.COSINE:
            raise CollectionMismatchError(
                f"Qdrant collection {name!r} holds {params.size}-dim {params.distance.value}"
                f" vectors but the embedder makes {self._dim}-dim Cosine ones; use another"
                " collection (RAGQ_QDRANT_COLLECTION) or re-index into a new one"
            )
        sparse_vectors = info.config.params.sparse_vectors or {}
        bm25 = sparse_vectors.get(SPARSE)
        if bm25 is None or bm25.modifier != models.Modifier.IDF:
            raise CollectionMismatchError(
                f"Qdrant collection {name!r} {self._where} has no {SPARSE!r} sparse vector"
                " with IDF: an older ragq created it, before hybrid search. Set"
                " RAGQ_QDRANT_COLLECTION to a new name, or delete this collection (in local"
                " mode, the folder), then index the documents again"
            )
        for field in _INDEXED_FIELDS:
            await self._create_keyword_index(field)

    async def _create_keyword_index(self, field: str) -> None:
        kwargs: dict[str, Any] = {
            "collection_name": self._collection,
            "field_name": field,
            "field_schema": models.PayloadSchemaType.KEYWORD,
        }
        if self._server is not None:
            await self._call("create_payload_index", **kwargs, wait=True)
            return
        local = self._require_local()

        def create() -> None:
            # Local mode accepts payload indexes but ignores them and warns so; a server
            # uses them, and the call keeps both modes on one code path.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", _LOCAL_INDEX_WARNING, UserWarning)
                local.create_payload_index(**kwargs)

        await asyncio.get_running_loop().run_in_executor(self._executor, create)

    async def _call(self, method: str, /, **kwargs: Any) -> Any:
        """Call a client method: awaited on a server, on the store's thread in local mode."""
        if self._closed:
            raise RuntimeError("the chunk store is closed")
        if self._server is not None:
            return await getattr(self._server, method)(**kwargs)
        call = functools.partial(getattr(self._require_local(), method), **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _require_local(self) -> QdrantClient:
        if self._local is None:
            raise RuntimeError("the chunk store has no client")
        return self._local

    def _checked(self, vector: Sequence[float]) -> list[float]:
        if len(vector) != self._dim:
            raise ValueError(f"vector has {len(vector)} dimensions, the collection {self._dim}")
        return [float(x) for x in vector]


def _point_id(chunk: StoredChunk) -> str:
    """A stable id per (tenant, document, version, chunk), so re-upserting replaces."""
    # JSON keeps the parts apart: joined with "/", tenant "a/b" + document "c" would
    # collide with tenant "a" + document "b/c".
    name = json.dumps([chunk.tenant, chunk.document_id, chunk.version, chunk.index])
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def _payload(chunk: StoredChunk) -> dict[str, Any]:
    return {
        "tenant": chunk.tenant,
        "document_id": chunk.document_id,
        "version": chunk.version,
        "index": chunk.index,
        "start": chunk.start,
        "end": chunk.end,
        "text": chunk.text,
        "title": chunk.title,
        "section": chunk.section,
        "metadata": dict(chunk.metadata),
    }


def _indexed_text(chunk: StoredChunk) -> str:
    """What BM25 indexes: the title and section heading give every chunk its context."""
    return "\n".join(part for part in (chunk.title, chunk.section, chunk.text) if part)


def _rank_key(hit: Hit) -> tuple[float, str, int, str]:
    return (-hit.score, hit.chunk.document_id, hit.chunk.index, hit.chunk.version)


def _fuse(
    lists: Sequence[Sequence[models.ScoredPoint]], weights: Sequence[float], k: int
) -> list[Hit]:
    """Weighted reciprocal rank fusion, with Qdrant's formula: a point at rank r of a list
    of weight w gains 1 / (r / w + k - 1).

    Fused here rather than by a Qdrant `FusionQuery`: there, equal scores in one list get
    consecutive ranks in whatever order Qdrant returns them, so identical chunks would get
    different fused scores; here equal scores share the best of their ranks, and identical
    chunks tie and are ordered like any tie.
    """
    scores: dict[models.ExtendedPointId, float] = {}
    payloads: dict[models.ExtendedPointId, Mapping[str, Any]] = {}
    for points, weight in zip(lists, weights, strict=True):
        if weight <= 0:
            continue
        rank, previous = 0, math.nan
        for position, point in enumerate(points, start=1):
            if point.score != previous:
                rank, previous = position, point.score
            scores[point.id] = scores.get(point.id, 0.0) + 1 / (rank / weight + k - 1)
            payloads[point.id] = point.payload or {}
    return [Hit(chunk=_stored_chunk(payloads[i]), score=score) for i, score in scores.items()]


def _collapse(hits: list[Hit], max_per_document: int | None) -> list[Hit]:
    """At most `max_per_document` hits per document version, best first.

    Per version, not per document: while a replaced version awaits its purge, its chunks
    must not crowd out the visible version's (the retriever drops invisible versions).
    """
    if max_per_document is None:
        return hits
    seen: Counter[tuple[str, str]] = Counter()
    kept = []
    for hit in hits:
        key = (hit.chunk.document_id, hit.chunk.version)
        seen[key] += 1
        if seen[key] <= max_per_document:
            kept.append(hit)
    return kept


def _filter(tenant: str, filters: Mapping[str, Scalar] | None) -> models.Filter:
    """The tenant (always) and every metadata value asked for."""
    must = [_tenant_condition(tenant)]
    must += [_metadata_condition(key, value) for key, value in (filters or {}).items()]
    return models.Filter(must=must)


def _stored_chunk(payload: Mapping[str, Any]) -> StoredChunk:
    return StoredChunk(
        tenant=payload["tenant"],
        document_id=payload["document_id"],
        version=payload["version"],
        index=payload["index"],
        start=payload["start"],
        end=payload["end"],
        text=payload["text"],
        title=payload["title"],
        section=payload["section"],
        metadata=payload["metadata"],
    )


def _equals(key: str, value: str | int | bool) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _any_of(key: str, values: Sequence[str]) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))


def _tenant_condition(tenant: str) -> models.FieldCondition:
    if not tenant:
        raise ValueError("a tenant is required")
    return _equals("tenant", tenant)


def _metadata_condition(key: str, value: Scalar) -> models.FieldCondition:
    """Equality on `metadata.<key>`; floats match by a closed range (Qdrant has no float match)."""
    if not key or '"' in key:
        raise ValueError(f"metadata key {key!r} cannot be filtered on")
    simple = all(c.isalnum() or c in "_-" for c in key)
    path = f"metadata.{key}" if simple else f'metadata."{key}"'
    if isinstance(value, float):
        return models.FieldCondition(key=path, range=models.Range(gte=value, lte=value))
    return _equals(path, value)
