"""Wire models of the Documents section of docs/API.md, and the ingest job payloads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shared.schemas.common import Metadata, StrictModel, WireModel

DocumentStatus = Literal["queued", "indexing", "indexed", "failed"]
DocumentId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class DocumentCreate(StrictModel):
    """`POST /v1/documents` JSON body."""

    id: DocumentId | None = None
    title: Annotated[str, Field(max_length=500)] = ""
    text: Annotated[str, Field(min_length=1)]
    metadata: Metadata = Field(default_factory=dict)


class DocumentPublic(WireModel):
    """The document object of docs/API.md."""

    id: str
    object: Literal["document"] = "document"
    status: DocumentStatus
    title: str
    metadata: dict[str, str | int | float | bool]
    chunks: int | None = None
    created_at: str
    indexed_at: str | None = None
    job_id: str | None = None
    error: str | None = None


class DocumentList(WireModel):
    """A page of documents; `next_cursor` is null on the last page."""

    object: Literal["list"] = "list"
    data: list[DocumentPublic]
    next_cursor: str | None = None
    has_more: bool = False


class IngestJobPayload(WireModel):
    """What the API enqueues to index one version of a document (the text stays in Redis)."""

    job_id: str
    tenant: str
    request_id: str
    document_id: str
    version: str


class PurgeJobPayload(WireModel):
    """Removes a deleted document's chunks from the vector store."""

    job_id: str
    tenant: str
    request_id: str
    document_id: str
