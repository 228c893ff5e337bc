"""The ingest job (chunk → validate offsets → embed → upsert → publish) and the purge job.

A new version's chunks are written beside the old ones and become visible in one
step when the document record is published; a failure leaves the old version served.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

import structlog

from shared.clients import REDIS_UNAVAILABLE
from shared.documents import kept_versions
from shared.logging import get_logger
from shared.schemas.documents import IngestJobPayload, PurgeJobPayload
from workers.lifecycle import Runtime
from workers.outage import interrupted
from workers.rag.chunking import Chunk, ChunkOffsetError, chunk_text, validate_chunks
from workers.rag.points import StoredChunk

log = get_logger("workers.ingest")
EMBED_BATCH = 256  # chunks per embedding call


def _chunk_and_validate(text: str, max_chars: int, overlap: int) -> list[Chunk]:
    chunks = chunk_text(text, max_chars=max_chars, overlap_chars=overlap)
    validate_chunks(text, chunks)
    return chunks


async def ingest(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    """Index one version of a document (arq job function)."""
    rt: Runtime = ctx["runtime"]
    job = IngestJobPayload.model_validate(payload)
    tenant, doc_id, version = job.tenant, job.document_id, job.version
    structlog.contextvars.bind_contextvars(
        request_id=job.request_id, tenant=tenant, job_id=job.job_id, document_id=doc_id
    )
    try:
        if not await rt.documents.set_status(tenant, doc_id, version, "indexing"):
            log.info("ingest.superseded", version=version)
            return
        record = await rt.documents.get(tenant, doc_id)
        text = await rt.documents.text(tenant, doc_id, version)
        if record is None or text is None:
            return
        loop = asyncio.get_running_loop()
        settings = rt.settings
        try:
            chunks = await loop.run_in_executor(
                rt.executor,
                partial(
                    _chunk_and_validate,
                    text,
                    settings.chunk_max_chars,
                    settings.chunk_overlap_chars,
                ),
            )
        except ChunkOffsetError as exc:
            await rt.documents.set_status(tenant, doc_id, version, "failed", f"chunking: {exc}")
            log.error("ingest.bad_chunks", error=str(exc))
            return
        if not chunks:
            await rt.documents.set_status(tenant, doc_id, version, "failed", "no text to index")
            return
        metadata = _metadata(record.get("metadata"))
        stored = [
            StoredChunk(
                tenant=tenant,
                document_id=doc_id,
                version=version,
                index=c.index,
                start=c.start,
                end=c.end,
                text=c.text,
                title=record.get("title") or doc_id,
                section=c.section,
                metadata=metadata,
            )
            for c in chunks
        ]
        # the configured model's collection, and the tenant's own until it is moved to it
        for index in await rt.indexes.for_writes(tenant):
            for i in range(0, len(stored), EMBED_BATCH):
                batch = stored[i : i + EMBED_BATCH]
                vectors = await index.embedder.embed([c.text for c in batch])
                await index.store.upsert(batch, vectors)
        replaced = await rt.documents.publish(tenant, doc_id, version, len(chunks))
        if replaced is None:  # deleted or re-posted while we indexed
            await _delete(rt, tenant, doc_id, only_versions=[version])
            log.info("ingest.superseded_after_index", version=version)
            return
        if replaced:
            await _delete(rt, tenant, doc_id, only_versions=[replaced])
        log.info("ingest.indexed", version=version, chunks=len(chunks), replaced=replaced or None)
    except REDIS_UNAVAILABLE as exc:  # not the document's fault: index it again later
        raise interrupted(exc, int(ctx.get("job_try", 1))) from exc
    except Exception as exc:
        log.exception("ingest.failed")
        await rt.documents.set_status(
            tenant, doc_id, version, "failed", f"indexing failed: {type(exc).__name__}"
        )
        await _delete(rt, tenant, doc_id, only_versions=[version])
    finally:
        structlog.contextvars.unbind_contextvars("job_id", "tenant", "request_id", "document_id")


async def purge_document(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    """Remove a deleted document's chunks, keeping any version posted since (arq job)."""
    rt: Runtime = ctx["runtime"]
    job = PurgeJobPayload.model_validate(payload)
    keep = kept_versions(await rt.documents.get(job.tenant, job.document_id))
    await _delete(rt, job.tenant, job.document_id, keep_versions=keep)
    log.info("document.purged", document_id=job.document_id, kept=keep)


async def _delete(rt: Runtime, tenant: str, doc_id: str, **versions: list[str]) -> None:
    """Delete chunks of a document from every open collection (a tenant being moved to
    another embedding model has them in two)."""
    for index in rt.indexes.all():
        await index.store.delete_document(tenant, doc_id, **versions)


def _metadata(raw: str | None) -> dict[str, str | int | float | bool]:
    value = json.loads(raw or "{}")
    return {k: v for k, v in value.items() if isinstance(v, str | int | float | bool)}
