"""The test LLM's JSON on the wire: reading a request's JSON object body, compact JSON
bytes, and OpenAI/vLLM-style error replies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def json_object(request: Request) -> dict[str, Any] | Response:
    """The request's JSON object body, or the 400 error to answer with."""
    try:
        body = await request.json()
    except ValueError:
        return error(400, "The request body is not valid JSON.")
    if not isinstance(body, dict):
        return error(400, "The request body must be a JSON object.")
    return body


def error(status: int, message: str) -> JSONResponse:
    """An OpenAI/vLLM-style error response."""
    try:
        phrase = HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:  # a status without a standard name, e.g. 599
        phrase = "API"
    err_type = phrase if phrase.endswith("Error") else phrase + "Error"
    body = {"error": {"message": message, "type": err_type, "param": None, "code": status}}
    return JSONResponse(body, status_code=status)


def json_bytes(obj: object) -> bytes:
    """`obj` as compact UTF-8 JSON."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def optional_int(body: Mapping[str, Any], name: str) -> int | None:
    """A non-negative integer field of a request body, None when absent; ValueError if bad."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value
