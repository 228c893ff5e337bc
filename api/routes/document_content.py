"""A document's text, as indexed: what citations' `start`/`end` offsets point into."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from api.deps import ClientsDep, TenantDep
from api.responses import header, problems
from shared.errors import NotFound

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.get(
    "/{document_id}/content",
    response_class=PlainTextResponse,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "The document's text",
            "headers": {
                "Cache-Control": header("`no-store`"),
                "X-Content-Type-Options": header("`nosniff`"),
            },
        },
        **problems(
            {404: "No such document (or another tenant's), or none of its versions is indexed yet"}
        ),
    },
)
async def document_content(
    document_id: str, clients: ClientsDep, tenant: TenantDep
) -> PlainTextResponse:
    """The text of the document's searchable version (404 until one is indexed)."""
    record = await clients.documents.get(tenant, document_id)
    version = record.get("version") if record else None
    text = await clients.documents.text(tenant, document_id, version) if version else None
    if text is None:
        raise NotFound(f"No indexed text for document {document_id!r}.")
    return PlainTextResponse(
        text,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )
