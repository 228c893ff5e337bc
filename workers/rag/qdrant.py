"""The chunk store's Qdrant collection: the client (a server when `qdrant_url` is set, else
qdrant-client's local mode on a thread of its own), one way to call it in either mode, and
the collection's layout (created, or checked against the embedder's size).
"""

from __future__ import annotations

import asyncio
import functools
import math
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from shared.config import Settings

DENSE = "dense"  # name of the dense vector in the collection
SPARSE = "bm25"  # name of the sparse (BM25) vector in the collection
_INDEXED_FIELDS = ("tenant", "document_id")
_LOCAL_INDEX_WARNING = "Payload indexes have no effect in the local Qdrant"
T = TypeVar("T")


class CollectionMismatchError(RuntimeError):
    """The Qdrant collection exists with a vector layout this version cannot use."""


class QdrantCollection:
    """One Qdrant collection and the client it is reached through, async in both modes."""

    def __init__(
        self,
        name: str,
        *,
        server: AsyncQdrantClient | None = None,
        local: QdrantClient | None = None,
        executor: ThreadPoolExecutor | None = None,
        where: str = "",
        owner: bool = True,
    ) -> None:
        """Use `QdrantCollection.open` or `sibling`; this only wires an opened client."""
        self.name = name
        self._server = server
        self._local = local
        self._executor = executor
        self._where = where  # the local folder or server URL, for error messages
        self._owner = owner  # closing the client is the owner's job
        self.closed = False

    def sibling(self, name: str) -> QdrantCollection:
        """Another collection through the same client (in local mode a folder admits one
        client): closing it leaves the client open; closing this one closes the client."""
        return QdrantCollection(
            name,
            server=self._server,
            local=self._local,
            executor=self._executor,
            where=self._where,
            owner=False,
        )

    async def drop(self) -> None:
        """Delete the collection and every point in it."""
        await self.call("delete_collection", collection_name=self.name)

    @classmethod
    async def open(cls, settings: Settings) -> QdrantCollection:
        """Connect to the server, or open the local folder (on the collection's own thread)."""
        name = settings.collection_name
        if settings.qdrant_url:
            api_key = settings.qdrant_api_key
            server = AsyncQdrantClient(
                url=settings.qdrant_url,
                api_key=api_key.get_secret_value() if api_key else None,
                timeout=math.ceil(settings.qdrant_timeout_s),  # the client takes whole seconds
            )
            return cls(name, server=server, where="on the Qdrant server (RAGQ_QDRANT_URL)")
        # Local mode: the async client would run searches on the event loop, and a folder
        # admits one client, so the sync client lives on one thread that this object owns.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragq-qdrant")
        path = str(settings.qdrant_path)
        try:
            loop = asyncio.get_running_loop()
            local = await loop.run_in_executor(executor, functools.partial(QdrantClient, path=path))
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(
            name, local=local, executor=executor, where=f"in the folder {path} (RAGQ_QDRANT_PATH)"
        )

    async def call(self, method: str, /, **kwargs: Any) -> Any:
        """Call a client method: awaited on a server, on the collection's thread in local mode."""
        if self.closed:
            raise RuntimeError("the chunk store is closed")
        if self._server is not None:
            return await getattr(self._server, method)(**kwargs)
        call = functools.partial(getattr(self._require_local(), method), **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def run(self, work: Callable[..., T], /, *args: Any) -> T:
        """CPU work off the event loop: on the collection's thread in local mode, else on
        the loop's default executor."""
        if self.closed:  # before the executor, which a closed collection has shut down
            raise RuntimeError("the chunk store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    async def ensure(self, dim: int) -> None:
        """Create the collection and its payload indexes, or check the existing one's layout."""
        name = self.name
        if not await self.call("collection_exists", collection_name=name):
            try:
                await self.call(
                    "create_collection",
                    collection_name=name,
                    vectors_config={
                        DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)
                    },
                    sparse_vectors_config={
                        SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                    },
                )
            except UnexpectedResponse as exc:  # another worker created it first
                if exc.status_code != 409:
                    raise
        info = await self.call("get_collection", collection_name=name)
        self._check_layout(info.config.params, dim)
        for field in _INDEXED_FIELDS:
            await self._create_keyword_index(field)

    def _check_layout(self, params: models.CollectionParams, dim: int) -> None:
        name = self.name
        vectors = params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, Mapping) else None
        if dense is None:
            raise CollectionMismatchError(
                f"Qdrant collection {name!r} has no {DENSE!r} vector; use another collection"
                " (RAGQ_QDRANT_COLLECTION) or delete this one"
            )
        if dense.size != dim or dense.distance != models.Distance.COSINE:
            raise CollectionMismatchError(
                f"Qdrant collection {name!r} holds {dense.size}-dim {dense.distance.value}"
                f" vectors but the embedder makes {dim}-dim Cosine ones; use another"
                " collection (RAGQ_QDRANT_COLLECTION) or re-index into a new one"
            )
        bm25 = (params.sparse_vectors or {}).get(SPARSE)
        if bm25 is None or bm25.modifier != models.Modifier.IDF:
            raise CollectionMismatchError(
                f"Qdrant collection {name!r} {self._where} has no {SPARSE!r} sparse vector"
                " with IDF: an older ragq created it, before hybrid search. Set"
                " RAGQ_QDRANT_COLLECTION to a new name, or delete this collection (in local"
                " mode, the folder), then index the documents again"
            )

    async def _create_keyword_index(self, field: str) -> None:
        kwargs: dict[str, Any] = {
            "collection_name": self.name,
            "field_name": field,
            "field_schema": models.PayloadSchemaType.KEYWORD,
        }
        if self._server is not None:
            await self.call("create_payload_index", **kwargs, wait=True)
            return
        local = self._require_local()

        def create() -> None:
            # Local mode accepts payload indexes but ignores them and warns so; a server
            # uses them, and the call keeps both modes on one code path.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", _LOCAL_INDEX_WARNING, UserWarning)
                local.create_payload_index(**kwargs)

        await self.run(create)

    async def aclose(self) -> None:
        """Close the client; in local mode this releases the storage folder."""
        if self.closed:
            return
        self.closed = True
        if not self._owner:
            return
        if self._server is not None:
            await self._server.close()
        if self._local is not None and self._executor is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._local.close)
            finally:
                self._executor.shutdown(wait=True)  # idle by now: close() was its last task

    def _require_local(self) -> QdrantClient:
        if self._local is None:
            raise RuntimeError("the chunk store has no client")
        return self._local
