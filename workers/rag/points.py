"""A chunk as the chunk store holds it: the `StoredChunk` record, a search `Hit`, and the
Qdrant point that carries one (its stable id, its payload and the text BM25 indexes).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.schemas.common import Scalar


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


def point_id(chunk: StoredChunk) -> str:
    """A stable id per (tenant, document, version, chunk), so re-upserting replaces."""
    # JSON keeps the parts apart: joined with "/", tenant "a/b" + document "c" would
    # collide with tenant "a" + document "b/c".
    name = json.dumps([chunk.tenant, chunk.document_id, chunk.version, chunk.index])
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def payload(chunk: StoredChunk) -> dict[str, Any]:
    """The point's payload: every field of the chunk (filters read tenant, document, version
    and metadata from it)."""
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


def stored_chunk(payload: Mapping[str, Any]) -> StoredChunk:
    """The chunk a point's payload holds."""
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


def indexed_text(chunk: StoredChunk) -> str:
    """What BM25 indexes: the title and section heading give every chunk its context."""
    return "\n".join(part for part in (chunk.title, chunk.section, chunk.text) if part)
