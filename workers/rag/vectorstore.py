"""The chunk store: documents' chunks and their dense vectors in one Qdrant collection.

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
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from shared.config import Settings
from shared.schemas.common import Scalar as Scalar  # str | int | float | bool, re-exported

DENSE = "dense"  # name of the dense vector in the collection
_UPSERT_BATCH = 256  # points per upsert request
_TIE_SLACK = 8  # extra hits fetched so equal scores at the cut-off are broken by our order
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


class CollectionMismatchError(RuntimeError):
    """The Qdrant collection exists with a vector layout this embedder cannot use."""


class ChunkStore:
    """Tenant-scoped chunk storage and dense search over one Qdrant collection."""

    def __init__(
        self,
        *,
        collection: str,
        dim: int,
        server: AsyncQdrantClient | None = None,
        local: QdrantClient | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        """Use `ChunkStore.open`; this only wires an already opened client."""
        self._collection = collection
        self._dim = dim
        self._server = server
        self._local = local
        self._executor = executor
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
            store = cls(collection=settings.qdrant_collection, dim=dim, server=server)
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
                collection=settings.qdrant_collection, dim=dim, local=local, executor=executor
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
        """Store chunks with their vectors; storing the same chunk again replaces it."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        points = [
            models.PointStruct(
                id=_point_id(chunk),
                vector={DENSE: self._checked(vector)},
                payload=_payload(chunk),
            )
            for chunk, vector in zip(chunks, vectors, strict=True)
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
        vector: Sequence[float],
        *,
        limit: int,
        filters: Mapping[str, Scalar] | None = None,
    ) -> list[Hit]:
        """The tenant's `limit` closest chunks whose metadata equals every filter value.

        Ordered by score, then document id and chunk index, so equal scores come back in
        the same order every time.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        response = await self._call(
            "query_points", **self._dense_query(tenant, vector, limit + _TIE_SLACK, filters)
        )
        hits = [Hit(chunk=_stored_chunk(p.payload or {}), score=p.score) for p in response.points]
        hits.sort(key=lambda h: (-h.score, h.chunk.document_id, h.chunk.index))
        return hits[:limit]

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

    def _dense_query(
        self,
        tenant: str,
        vector: Sequence[float],
        limit: int,
        filters: Mapping[str, Scalar] | None,
    ) -> dict[str, Any]:
        """`query_points` arguments; hybrid search will add a sparse prefetch and fusion here."""
        must = [_tenant_condition(tenant)]
        must += [_metadata_condition(key, value) for key, value in (filters or {}).items()]
        return {
            "collection_name": self._collection,
            "query": self._checked(vector),
            "using": DENSE,
            "query_filter": models.Filter(must=must),
            "limit": limit,
            "with_payload": True,
        }

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
