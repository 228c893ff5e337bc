"""Wire models of the Documents section of docs/API.md, and the ingest job payloads."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from shared.schemas.common import NOT_BLANK_STRIPPED, Metadata, StrictModel, WireModel

DocumentStatus = Literal["queued", "indexing", "indexed", "failed"]
DocumentId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class DocumentCreate(StrictModel):
    """`POST /v1/documents` JSON body."""

    id: DocumentId | None = None
    title: Annotated[str, Field(max_length=500)] = ""
    text: Annotated[str, Field(min_length=1, json_schema_extra={"pattern": NOT_BLANK_STRIPPED})]
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
    content_sha256: str | None = None  # shared/contenthash.py; null: stored before hashing


class DocumentList(WireModel):
    """A page of documents; `next_cursor` is null on the last page."""

    object: Literal["list"] = "list"
    data: list[DocumentPublic]
    next_cursor: str | None = None
    has_more: bool = False


class DocumentBulkCreate(StrictModel):
    """`POST /v1/documents/bulk` JSON body (each document is validated on its own)."""

    documents: list[DocumentCreate]
    skip_unchanged: bool = True


BulkItemStatus = Literal["queued", "unchanged", "failed"]


class BulkItemError(WireModel):
    """Why one document of a bulk load failed, shaped like a problem body."""

    status: int
    title: str
    detail: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


class BulkItem(WireModel):
    """What happened to one document of a bulk load, at its `index` in the request."""

    index: int
    id: str | None
    status: BulkItemStatus
    job_id: str | None = None
    content_sha256: str | None = None
    error: BulkItemError | None = None


class BulkResult(WireModel):
    """The answer of `POST /v1/documents/bulk`: one item per document, in request order."""

    object: Literal["bulk_result"] = "bulk_result"
    data: list[BulkItem]
    queued: int
    unchanged: int
    failed: int


class DocumentStatusRequest(StrictModel):
    """`POST /v1/documents/status` body: the documents to read, and how long to wait."""

    ids: Annotated[list[Annotated[str, Field(min_length=1, max_length=128)]], Field(min_length=1)]
    wait: Annotated[float, Field(ge=0, le=60)] = 0  # seconds


class DocumentMissing(WireModel):
    """A listed id with no document (never created, deleted, or another tenant's)."""

    id: str
    object: Literal["document"] = "document"
    status: Literal["missing"] = "missing"


class DocumentStatusList(WireModel):
    """The answer of `POST /v1/documents/status`; `pending` counts `queued` and `indexing`."""

    object: Literal["list"] = "list"
    data: list[DocumentPublic | DocumentMissing]
    pending: int


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
