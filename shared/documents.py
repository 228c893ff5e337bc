"""Document records in Redis: the source of truth for what retrieval may return.

Each document has a visible `version`; chunks in the vector store carry the version
they belong to, and retrieval keeps only chunks of visible versions. So a replace
becomes visible in one step (`publish`: shared/lua/documents_publish.lua), and a delete
hides the document at once, before its chunks are purged from the vector store.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from shared.contenthash import content_sha256
from shared.docevents import announce
from shared.lua import source
from shared.queue import JOB_EXPIRES_MS, NOTIFY_MAX_LEN, arq_payload, enqueue_keys
from shared.redis_keys import INGEST_JOB, Keys
from shared.schemas.common import rfc3339, utcnow
from shared.schemas.documents import DocumentCreate, DocumentPublic, IngestJobPayload
from shared.versioncache import VersionCache


def new_version() -> str:
    """A fresh, never reused version id."""
    return "v" + secrets.token_hex(8)


def new_document_id() -> str:
    """A server-chosen document id."""
    return "doc_" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class NewVersion:
    """One document of a bulk load to stage: its id (the client's or a new one), its job."""

    doc_id: str
    doc: DocumentCreate
    job_id: str
    content_sha256: str


STATE_FIELDS = ("content_sha256", "status", "job_id")  # StoredState's, in its order


@dataclass(frozen=True, slots=True)
class StoredState:
    """What a bulk load compares a document with: its stored hash, status and job."""

    content_sha256: str | None
    status: str | None
    job_id: str | None


class DocumentStore:
    """Document records, their source texts and their visible versions."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._versions = VersionCache()
        self._publish = redis.register_script(source("documents_publish"))
        self._set_status = redis.register_script(source("documents_set_status"))
        self._enqueue = redis.register_script(source("queue_enqueue"))

    def _stage_on(self, pipe: Any, tenant: str, new: NewVersion, version: str, now: str) -> None:
        """Queue the writes of staging one version on `pipe`, the record's HGETALL last."""
        doc, doc_id = new.doc, new.doc_id
        key = self._keys.document(tenant, doc_id)
        fields = {
            "id": doc_id,
            "title": doc.title,
            "metadata": json.dumps(doc.metadata),
            "status": "queued",
            "pending_version": version,
            "job_id": new.job_id,
            "error": "",
            "content_sha256": new.content_sha256,
        }
        pipe.set(self._keys.document_text(tenant, doc_id, version), doc.text)
        pipe.hsetnx(key, "created_at", now)
        pipe.hset(key, mapping=fields)
        pipe.zadd(self._keys.documents(tenant), {doc_id: 0})
        pipe.hgetall(key)

    async def stage(
        self, tenant: str, doc: DocumentCreate, *, job_id: str
    ) -> tuple[DocumentPublic, str]:
        """Store a new version's text and mark the document queued; returns it and the version.

        An existing document keeps serving its visible version until the new one is published.
        """
        digest = content_sha256(doc.title, doc.text, doc.metadata)
        new = NewVersion(doc.id or new_document_id(), doc, job_id, digest)
        version = new_version()
        async with self._redis.pipeline(transaction=True) as pipe:
            self._stage_on(pipe, tenant, new, version, rfc3339(utcnow()))
            *_, record = await pipe.execute()
        return to_public(record), version

    async def stage_many(
        self, tenant: str, docs: Sequence[NewVersion], *, queue: str, request_id: str
    ) -> list[DocumentPublic]:
        """Stage many documents and enqueue the ingest job of each, all in one transaction
        (one round trip); the records in the order given."""
        now = rfc3339(utcnow())
        async with self._redis.pipeline(transaction=True) as pipe:
            for new in docs:
                version = new_version()
                self._stage_on(pipe, tenant, new, version, now)
                payload = IngestJobPayload(
                    job_id=new.job_id,
                    tenant=tenant,
                    request_id=request_id,
                    document_id=new.doc_id,
                    version=version,
                )
                body, score = arq_payload(INGEST_JOB, payload.model_dump())
                await self._enqueue(
                    keys=enqueue_keys(self._keys, queue, new.job_id),
                    args=[new.job_id, body, score, JOB_EXPIRES_MS, NOTIFY_MAX_LEN],
                    client=pipe,
                )
            replies = await pipe.execute() if docs else []
        # per document: SET, HSETNX, HSET, ZADD, HGETALL, then the enqueue script
        return [to_public(replies[i * 6 + 4]) for i in range(len(docs))]

    async def states(self, tenant: str, doc_ids: Sequence[str]) -> list[StoredState]:
        """The stored hash, status and job of each document (all None when it does not exist)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for doc_id in doc_ids:
                pipe.hmget(self._keys.document(tenant, doc_id), [*STATE_FIELDS])
            replies = await pipe.execute()
        return [StoredState(*(v or None for v in reply)) for reply in replies]

    async def records(self, tenant: str, doc_ids: Sequence[str]) -> list[dict[str, str] | None]:
        """The raw record of each listed document (None when it does not exist), in order."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for doc_id in doc_ids:
                pipe.hgetall(self._keys.document(tenant, doc_id))
            replies = await pipe.execute()
        return [r or None for r in replies]

    async def get(self, tenant: str, doc_id: str) -> dict[str, str] | None:
        """The raw record, or None."""
        key = self._keys.document(tenant, doc_id)
        raw = cast(dict[str, str], await self._redis.hgetall(key))  # type: ignore[misc]
        return raw or None

    async def text(self, tenant: str, doc_id: str, version: str) -> str | None:
        """The source text of one version."""
        raw = await self._redis.get(self._keys.document_text(tenant, doc_id, version))
        return cast(str | None, raw)

    async def set_status(
        self, tenant: str, doc_id: str, version: str, status: str, error: str = ""
    ) -> bool:
        """Move the pending version to `indexing` or `failed`; False if it was superseded.

        A failed version is no longer pending: it will never be published.
        """
        key = self._keys.document(tenant, doc_id)
        if status != "failed":
            return bool(await self._set_status(keys=[key], args=[version, status, error, 0]))
        async with self._redis.pipeline(transaction=True) as pipe:
            await self._set_status(keys=[key], args=[version, status, error, 1], client=pipe)
            announce(pipe, self._keys, tenant, doc_id)  # a stale one only wakes a waiter
            done, *_ = await pipe.execute()
        return bool(done)

    async def publish(self, tenant: str, doc_id: str, version: str, chunks: int) -> str | None:
        """Make `version` the visible one in one step.

        Returns the replaced version ('' if none), or None if this version was superseded
        (posted again or deleted meanwhile) and must be purged instead.
        """
        key = self._keys.document(tenant, doc_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            await self._publish(
                keys=[key, self._keys.corpus(tenant)],
                args=[version, rfc3339(utcnow()), chunks, "indexed"],
                client=pipe,
            )
            announce(pipe, self._keys, tenant, doc_id)
            old, *_ = await pipe.execute()
        if old is None:
            return None
        old = cast(str, old)
        if old:
            await self._redis.delete(self._keys.document_text(tenant, doc_id, old))
        return old

    async def delete(self, tenant: str, doc_id: str) -> bool:
        """Remove the document from the tenant's view at once; False if it did not exist."""
        key = self._keys.document(tenant, doc_id)
        record = await self.get(tenant, doc_id)
        if record is None:
            return False
        versions = {record.get("version", ""), record.get("pending_version", "")} - {""}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key, *(self._keys.document_text(tenant, doc_id, v) for v in versions))
            pipe.zrem(self._keys.documents(tenant), doc_id)
            pipe.incr(self._keys.corpus(tenant))  # cached answers may cite it: invalidate
            announce(pipe, self._keys, tenant, doc_id)
            await pipe.execute()
        return True

    async def page(
        self, tenant: str, *, limit: int, cursor: str | None
    ) -> tuple[list[DocumentPublic], str | None]:
        """Documents ordered by id after `cursor`; the cursor of the next page or None."""
        start = f"({cursor}" if cursor else "-"
        ids = cast(
            list[str],
            await self._redis.zrangebylex(
                self._keys.documents(tenant), start, "+", start=0, num=limit + 1
            ),
        )
        more = len(ids) > limit
        ids = ids[:limit]
        docs = [to_public(r) for r in await self.records(tenant, ids) if r]
        return docs, (ids[-1] if more and ids else None)

    async def visible_versions(
        self, tenant: str, doc_ids: list[str], *, cached: bool = False
    ) -> dict[str, str]:
        """The visible version of each listed document that still exists, read now (after
        the search whose hits are being filtered).

        With `cached`, versions are remembered per tenant and corpus version (VersionCache):
        the corpus version is read first, and only documents not seen under it are read.
        That version is read here, not earlier in the job: a question whose search ran
        after a replace's old chunks were purged must see the new version, and the purge
        comes after the publish that moved the corpus version.
        """
        corpus: str | None = None
        known: dict[str, str] = {}
        if cached:
            corpus = str(await self._redis.get(self._keys.corpus(tenant)) or "0")
            known = self._versions.get(tenant, corpus)
        todo = [d for d in doc_ids if d not in known]
        if todo:
            async with self._redis.pipeline(transaction=False) as pipe:
                for doc_id in todo:
                    pipe.hget(self._keys.document(tenant, doc_id), "version")
                read = await pipe.execute()
            fresh = {d: v or "" for d, v in zip(todo, read, strict=True)}
            if corpus is not None:
                self._versions.put(tenant, corpus, fresh)
            known = {**known, **fresh}
        return {d: known[d] for d in doc_ids if known[d]}


def kept_versions(record: Mapping[str, Any] | None) -> list[str]:
    """The versions of a document whose chunks must stay: the visible one and the one being
    indexed (none once the document is deleted)."""
    if not record:
        return []
    return sorted({record.get("version", ""), record.get("pending_version", "")} - {""})


def to_public(record: dict[str, Any]) -> DocumentPublic:
    """The document object of docs/API.md from a stored record."""
    chunks = record.get("chunks")
    return DocumentPublic(
        id=record["id"],
        status=record["status"],
        title=record.get("title", ""),
        metadata=json.loads(record.get("metadata") or "{}"),
        chunks=int(chunks) if chunks else None,
        created_at=record["created_at"],
        indexed_at=record.get("indexed_at") or None,
        job_id=record.get("job_id") or None,
        error=record.get("error") or None,
        content_sha256=record.get("content_sha256") or None,
    )
