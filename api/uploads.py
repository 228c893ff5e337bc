"""Reading a document from a request: a JSON body, or a multipart upload of a file.

Uploads may be UTF-8 text (`.txt`, `.md`), PDF or HTML (their text: api/extract.py);
anything else is refused before it is stored, with 415 for a file type ragq cannot read
(or bytes that are not what the file claims to be) and 422 for invalid content.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import pydantic_core
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api.extract import SUFFIXES, TYPES, extract
from shared.errors import InvalidInput, UnsupportedMediaType
from shared.schemas.documents import DocumentCreate

_DOCUMENT = DocumentCreate.model_json_schema()
# Both request forms, for the OpenAPI description of the route. A form's empty `id` or
# `title` counts as not sent.
OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _DOCUMENT},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "additionalProperties": False,
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "id": {
                            "type": "string",
                            "maxLength": 128,
                            "pattern": r"^[A-Za-z0-9_.:-]*$",
                        },
                        "title": {"type": "string", "maxLength": 500},
                        "metadata": _DOCUMENT["properties"]["metadata"],  # a JSON part
                    },
                },
                "encoding": {
                    "file": {"contentType": ", ".join(TYPES)},
                    "metadata": {"contentType": "application/json"},
                },
            },
        },
    }
}


FORM_FIELDS = frozenset({"file", "id", "title", "metadata"})


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, extra={"errors": [{"loc": ["body", field], "msg": message}]})


def _validated(values: dict[str, Any]) -> DocumentCreate:
    try:
        doc = DocumentCreate.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    if not doc.text.strip():
        raise _invalid("text", "text is empty")
    return doc


def _parse_json(raw: bytes | str, field: str, what: str) -> Any:
    """JSON text as Python values; pydantic's parser stops at 200 levels of nesting with an
    error, where the standard library's would raise RecursionError (a 500) near 1,000."""
    try:
        return pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:  # not UTF-8, not JSON, or nested too deeply
        raise _invalid(field, f"{what} is not valid UTF-8 JSON: {exc}") from None


async def _from_json(request: Request) -> DocumentCreate:
    values = _parse_json(await request.body(), "body", "the body")
    if not isinstance(values, dict):
        raise _invalid("body", "the body must be a JSON object")
    return _validated(values)


def _decode_text(name: str, raw: bytes) -> str:
    if b"\x00" in raw:
        raise UnsupportedMediaType(f"{name} looks binary; upload UTF-8 .txt or .md, PDF or HTML")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid("file", f"{name} is not valid UTF-8 (byte {exc.start})") from None
    return text.removeprefix("\ufeff")  # a BOM is an encoding mark, not text


async def _from_form(request: Request) -> DocumentCreate:
    async with request.form(max_files=1, max_fields=8) as form:
        names = [name for name, _ in form.multi_items()]
        for name in names:  # strict, as JSON bodies are: no unknown or repeated field
            if name not in FORM_FIELDS:
                raise _invalid(name, f"unknown form field {name!r}: send {sorted(FORM_FIELDS)}")
            if names.count(name) > 1:
                raise _invalid(name, f"form field {name!r} is sent more than once")
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise _invalid("file", "a `file` part is required")
        name = upload.filename or "upload"
        suffix = PurePath(name).suffix.lower()
        content_type = (upload.content_type or "").split(";")[0].strip().lower()
        kind = SUFFIXES.get(suffix) or TYPES.get(content_type)
        if kind is None:
            raise UnsupportedMediaType(
                f"cannot read {name!r} ({content_type or 'no type'}): upload .txt, .md, .pdf "
                "or .html files"
            )
        raw = await upload.read()
        own_title: str | None = None
        if kind == "text":
            text = _decode_text(name, raw)
        else:
            text, own_title = await extract(kind, name, raw)
        raw_metadata = form.get("metadata")
        metadata = (
            _parse_json(raw_metadata, "metadata", "metadata")
            if isinstance(raw_metadata, str)
            else {}
        )
        title = form.get("title")
        heading = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), "")
        values: dict[str, Any] = {
            "text": text,
            "title": (title if isinstance(title, str) and title else None)
            or own_title
            or heading
            or PurePath(name).stem,
            "metadata": metadata,
        }
        if isinstance(doc_id := form.get("id"), str) and doc_id:
            values["id"] = doc_id
        return _validated(values)


async def document_from_request(request: Request) -> DocumentCreate:
    """The document a JSON or multipart request carries, validated."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        return await _from_json(request)
    if content_type == "multipart/form-data":
        return await _from_form(request)
    raise UnsupportedMediaType(
        f"send application/json or multipart/form-data, not {content_type or 'no content type'}"
    )
