"""Documents in bulk: load many in one request (JSON or NDJSON), and read or wait for many.

A bulk load is one request for the rate limit. Each document is validated on its own and
gets its own item in the answer (`queued`, `unchanged` or `failed`), so one bad document
does not sink the others; only a body that cannot be read at all is refused whole.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pydantic_core
import structlog
from fastapi import APIRouter, Query, Request
from pydantic import ValidationError

from api.deps import ClientsDep, TenantDep
from api.jsonbody import JsonBodyRoute
from api.responses import problems
from api.routes.documents import INGEST_QUEUE
from shared.contenthash import content_sha256
from shared.docevents import PENDING, wait_settled
from shared.documents import NewVersion, new_document_id, to_public
from shared.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from shared.jobrecord import new_job_id
from shared.schemas.documents import (
    BulkItem,
    BulkItemError,
    BulkResult,
    DocumentCreate,
    DocumentMissing,
    DocumentPublic,
    DocumentStatusList,
    DocumentStatusRequest,
)

router = APIRouter(prefix="/v1/documents", tags=["documents"], route_class=JsonBodyRoute)
log = structlog.get_logger("api.documents")

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson"})
UNCHANGED_STATUSES = frozenset({"indexed", "queued", "indexing"})  # failed: load it again
OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {  # DocumentBulkCreate's, inlined: its `$defs` would not resolve here
                    "type": "object",
                    "required": ["documents"],
                    "additionalProperties": False,
                    "properties": {
                        "documents": {
                            "type": "array",
                            "minItems": 1,
                            "items": {  # any value: one that is no document fails alone
                                "description": "A document, as `POST /v1/documents` takes "
                                "it; an item that is not one fails on its own (`failed`).",
                                "anyOf": [DocumentCreate.model_json_schema(), {}],
                            },
                        },
                        "skip_unchanged": {"type": "boolean", "default": True},
                    },
                }
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one document object per line"}
            },
        },
    }
}


def _invalid(loc: list[str | int], message: str) -> InvalidInput:
    return InvalidInput(message, extra={"errors": [{"loc": loc, "msg": message}]})


def _json(raw: bytes, loc: list[str | int], what: str) -> Any:
    try:  # pydantic's parser: UTF-8 checked, nesting past 200 levels an error, not a crash
        return pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise _invalid(loc, f"{what} is not valid UTF-8 JSON: {exc}") from None


def _counted(items: list[Any], limit: int) -> list[Any]:
    if not items:
        raise _invalid(["body", "documents"], "no documents: send at least one")
    if len(items) > limit:
        raise PayloadTooLarge(f"{len(items)} documents is over the limit of {limit} per request")
    return items


def _envelope(raw: bytes, limit: int) -> tuple[list[Any], bool | None]:
    """The documents and `skip_unchanged` (None: not sent) of a JSON body."""
    body = _json(raw, ["body"], "the body")
    if not isinstance(body, dict):
        raise _invalid(["body"], "the body must be a JSON object with a `documents` list")
    if unknown := sorted(set(body) - {"documents", "skip_unchanged"}):
        raise _invalid(["body", unknown[0]], f"unknown fields: {', '.join(unknown)}")
    documents = body.get("documents")
    if not isinstance(documents, list):
        raise _invalid(["body", "documents"], "`documents` must be a list of documents")
    skip = body.get("skip_unchanged")
    if "skip_unchanged" in body and not isinstance(skip, bool):  # null is no bool either
        raise _invalid(["body", "skip_unchanged"], "`skip_unchanged` must be true or false")
    return _counted(documents, limit), skip


def _lines(raw: bytes, limit: int) -> list[Any]:
    """The documents of an NDJSON body, one per non-blank line."""
    numbered = [(n, line) for n, line in enumerate(raw.split(b"\n"), 1) if line.strip()]
    _counted(numbered, limit)  # before parsing: refuse an over-long body at once
    return [_json(line, ["body", "line", n], f"line {n}") for n, line in numbered]


def _checked(index: int, item: Any) -> tuple[DocumentCreate, str] | BulkItemError:
    """One document validated, with its content hash; or why it is refused."""
    loc: list[str | int] = ["body", "documents", index]
    try:
        doc = DocumentCreate.model_validate(item)
    except ValidationError as exc:
        errors = [
            {"loc": [*loc, *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False)
        ]
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc'][len(loc) :])) or 'document'}: {e['msg']}" for e in errors
        )
        return BulkItemError(status=422, title="Validation error", detail=detail, errors=errors)
    if not doc.text.strip():
        error = {"loc": [*loc, "text"], "msg": "text is empty", "type": "value_error"}
        return BulkItemError(
            status=422, title="Validation error", detail="text: text is empty", errors=[error]
        )
    return doc, content_sha256(doc.title, doc.text, doc.metadata)


def _parse(
    raw: bytes, content_type: str, skip_query: bool, limit: int
) -> tuple[list[tuple[DocumentCreate, str] | BulkItemError], list[Any], bool]:
    """The checked documents, the raw items (for the ids of failed ones) and whether to skip
    unchanged ones. CPU work on up to the documents' body limit: run off the event loop."""
    if content_type in JSON_TYPES:
        items, skip = _envelope(raw, limit)
    elif content_type in NDJSON_TYPES:
        items, skip = _lines(raw, limit), None
    else:
        raise UnsupportedMediaType(
            f"send application/json or application/x-ndjson, not {content_type or 'no type'}"
        )
    checked = [_checked(i, item) for i, item in enumerate(items)]
    return checked, items, skip_query if skip is None else skip


def _raw_id(item: Any) -> str | None:
    value = item.get("id") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


@router.post(
    "/bulk",
    response_model=BulkResult,
    openapi_extra=OPENAPI_BODY,
    responses=problems(
        {
            413: "More than `RAGQ_BULK_MAX_DOCUMENTS` documents, or a body over the "
            "documents' size limit",
            415: "Neither `application/json` nor `application/x-ndjson`",
            422: "No documents, a body (or line) that is not JSON, or not an object with a "
            "`documents` list",
        }
    ),
)
async def bulk_load(
    request: Request,
    clients: ClientsDep,
    tenant: TenantDep,
    skip_unchanged: Annotated[bool, Query()] = True,
) -> BulkResult:
    """Load many documents in one request; each is queued, unchanged or failed on its own."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    limit = clients.settings.bulk_max_documents
    checked, items, skip = await asyncio.to_thread(_parse, raw, content_type, skip_unchanged, limit)
    results: list[BulkItem | None] = [None] * len(checked)
    fresh: list[tuple[int, NewVersion]] = []
    first_at: dict[str, int] = {}
    for index, outcome in enumerate(checked):
        if isinstance(outcome, BulkItemError):
            results[index] = BulkItem(
                index=index, id=_raw_id(items[index]), status="failed", error=outcome
            )
            continue
        doc, digest = outcome
        if doc.id is not None and doc.id in first_at:
            detail = f"document {doc.id!r} is already at index {first_at[doc.id]} of this request"
            error = BulkItemError(status=409, title="Conflict", detail=detail)
            results[index] = BulkItem(
                index=index, id=doc.id, status="failed", content_sha256=digest, error=error
            )
            continue
        if doc.id is not None:
            first_at[doc.id] = index
        fresh.append((index, NewVersion(doc.id or new_document_id(), doc, new_job_id(), digest)))
    if skip:
        named = [(i, new) for i, new in fresh if new.doc.id is not None]
        states = await clients.documents.states(tenant, [new.doc_id for _, new in named])
        for (index, new), state in zip(named, states, strict=True):
            if state.content_sha256 == new.content_sha256 and state.status in UNCHANGED_STATUSES:
                results[index] = BulkItem(
                    index=index,
                    id=new.doc_id,
                    status="unchanged",
                    job_id=state.job_id,
                    content_sha256=new.content_sha256,
                )
        fresh = [(i, new) for i, new in fresh if results[i] is None]
    staged = await clients.documents.stage_many(
        tenant,
        [new for _, new in fresh],
        queue=INGEST_QUEUE,
        request_id=request.state.request_id,
    )
    for (index, new), doc_public in zip(fresh, staged, strict=True):
        results[index] = BulkItem(
            index=index,
            id=doc_public.id,
            status="queued",
            job_id=new.job_id,
            content_sha256=new.content_sha256,
        )
    data = [item for item in results if item is not None]
    queued, unchanged, failed = (
        sum(item.status == status for item in data) for status in ("queued", "unchanged", "failed")
    )
    log.info("documents.bulk", queued=queued, unchanged=unchanged, failed=failed)
    return BulkResult(data=data, queued=queued, unchanged=unchanged, failed=failed)


@router.post(
    "/status",
    response_model=DocumentStatusList,
    responses=problems({413: "More than `RAGQ_BULK_MAX_DOCUMENTS` ids"}),
)
async def documents_status(
    body: DocumentStatusRequest, clients: ClientsDep, tenant: TenantDep
) -> DocumentStatusList:
    """Read many documents' status; `wait` holds the request until none is pending."""
    limit = clients.settings.bulk_max_documents
    if len(body.ids) > limit:
        raise PayloadTooLarge(f"{len(body.ids)} ids is over the limit of {limit} per request")
    if body.wait > 0:
        await wait_settled(
            clients.redis, clients.redis_blocking, clients.keys, tenant, body.ids, body.wait
        )
    records = await clients.documents.records(tenant, body.ids)
    data: list[DocumentPublic | DocumentMissing] = [
        to_public(record) if record else DocumentMissing(id=doc_id)
        for doc_id, record in zip(body.ids, records, strict=True)
    ]
    pending = sum(item.status in PENDING for item in data)
    return DocumentStatusList(data=data, pending=pending)
