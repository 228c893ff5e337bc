"""Documents: ingest (asynchronous), read, list with a cursor, delete."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import ClientsDep, TenantDep
from api.responses import header, problems
from api.uploads import OPENAPI_BODY, document_from_request
from shared.documents import to_public
from shared.errors import NotFound
from shared.jobrecord import new_job_id
from shared.redis_keys import INGEST_JOB, PURGE_JOB
from shared.schemas.documents import (
    DocumentList,
    DocumentPublic,
    IngestJobPayload,
    PurgeJobPayload,
)

router = APIRouter(prefix="/v1/documents", tags=["documents"])
log = structlog.get_logger("api.documents")
INGEST_QUEUE = "batch"  # indexing never takes an interactive slot
NO_DOCUMENT = "No such document (or another tenant's)"


@router.post(
    "",
    status_code=202,
    response_model=DocumentPublic,
    openapi_extra=OPENAPI_BODY,
    responses={
        202: {"headers": {"Location": header("The document's URL")}},
        **problems(
            {
                415: "Another content type, a file type ragq cannot read, or bytes that are "
                "not what the file claims",
                422: "The body breaks the schema, the text is empty or not UTF-8, or the file "
                "has no text ragq can read",
            }
        ),
    },
)
async def create_document(request: Request, clients: ClientsDep, tenant: TenantDep) -> JSONResponse:
    """Ingest a document (JSON, or a multipart .txt/.md upload); an existing id is replaced."""
    body = await document_from_request(request)
    job_id = new_job_id()
    doc, version = await clients.documents.stage(tenant, body, job_id=job_id)
    payload = IngestJobPayload(
        job_id=job_id,
        tenant=tenant,
        request_id=request.state.request_id,
        document_id=doc.id,
        version=version,
    )
    await clients.enqueuer.enqueue(INGEST_QUEUE, INGEST_JOB, job_id, payload.model_dump())
    log.info("document.queued", document_id=doc.id, version=version, chars=len(body.text))
    return JSONResponse(
        doc.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/documents/{doc.id}"},
    )


@router.get("", response_model=DocumentList)
async def list_documents(
    clients: ClientsDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
) -> DocumentList:
    """List documents in id order; pass `next_cursor` back as `cursor` for the next page."""
    docs, next_cursor = await clients.documents.page(tenant, limit=limit, cursor=cursor)
    return DocumentList(data=docs, next_cursor=next_cursor, has_more=next_cursor is not None)


@router.get("/{document_id}", response_model=DocumentPublic, responses=problems({404: NO_DOCUMENT}))
async def get_document(document_id: str, clients: ClientsDep, tenant: TenantDep) -> DocumentPublic:
    """Read a document's status."""
    record = await clients.documents.get(tenant, document_id)
    if record is None:
        raise NotFound(f"No document {document_id!r}.")
    return to_public(record)


@router.delete("/{document_id}", status_code=204, responses=problems({404: NO_DOCUMENT}))
async def delete_document(
    request: Request, document_id: str, clients: ClientsDep, tenant: TenantDep
) -> Response:
    """Delete a document; it stops appearing in answers at once."""
    if not await clients.documents.delete(tenant, document_id):
        raise NotFound(f"No document {document_id!r}.")
    job_id = new_job_id()
    payload = PurgeJobPayload(
        job_id=job_id,
        tenant=tenant,
        request_id=request.state.request_id,
        document_id=document_id,
    )
    await clients.enqueuer.enqueue(INGEST_QUEUE, PURGE_JOB, job_id, payload.model_dump())
    log.info("document.deleted", document_id=document_id)
    return Response(status_code=204)
