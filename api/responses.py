"""What the OpenAPI document says about responses: the problem+json and OpenAI error
schemas, and the helpers routes declare their own error statuses, headers and event
streams with (`responses=problems({404: "…"})`). api/openapi.py adds what every operation
of a kind answers and puts the schemas below into the document's components."""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"
EVENT_STREAM = "text/event-stream"
REF = "#/components/schemas/"
Responses = dict[int | str, dict[str, Any]]

_FIELD_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["loc", "msg"],
    "properties": {
        "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
        "msg": {"type": "string"},
        "type": {"type": "string"},
    },
}
# the components api/openapi.py adds (RFC 9457 problem details; OpenAI's error body)
COMPONENTS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details (docs/API.md, Errors).",
        "required": ["type", "title", "status", "detail", "request_id"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "request_id": {"type": "string"},
            "errors": {"type": "array", "items": _FIELD_ERROR},
            "job_id": {"type": "string", "description": "the job a 409 or 504 is about"},
        },
    },
    "ValidationProblem": {
        "description": "A `validation-error` problem: `errors` lists each offending field.",
        "allOf": [{"$ref": REF + "Problem"}, {"type": "object", "required": ["errors"]}],
    },
    "OpenAIError": {
        "type": "object",
        "description": "OpenAI's error body; `code` is the problem type ragq uses elsewhere.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": "null"},
                    "code": {"type": "string"},
                },
            }
        },
    },
}

RETRY_AFTER: dict[str, Any] = {
    "description": "Seconds to wait before trying again.",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}


def header(description: str, *, required: bool = True, **schema: Any) -> dict[str, Any]:
    """A response header object (a string unless `schema` says otherwise)."""
    return {
        "description": description,
        "required": required,
        "schema": schema or {"type": "string"},
    }


def _errors(media_type: str, schema: str, described: dict[int, str]) -> Responses:
    out: Responses = {}
    for status, description in described.items():
        name = "ValidationProblem" if status == 422 else schema
        response: dict[str, Any] = {
            "description": description,
            "content": {media_type: {"schema": {"$ref": REF + name}}},
        }
        if status in (429, 503):
            response["headers"] = {"Retry-After": RETRY_AFTER}
        out[status] = response
    return out


def problems(described: dict[int, str]) -> Responses:
    """problem+json responses, one per status, with what each means on this route."""
    return _errors(PROBLEM_JSON, "Problem", described)


def openai_errors(described: dict[int, str]) -> Responses:
    """OpenAI-shaped error responses (`application/json`), for the OpenAI-compatible routes."""
    return _errors("application/json", "OpenAIError", described)


def event_stream(event: dict[str, Any]) -> dict[str, Any]:
    """The `text/event-stream` content whose events each match `event` (an object of the
    `data`, `event`, `id` and `retry` fields of one event, as OpenAPI 3.1 tools read it)."""
    return {EVENT_STREAM: {"schema": event}}


def numbers_up_to(limit: int) -> str:
    """A regular expression (no anchors) of the ASCII-digit strings, leading zeros allowed,
    of at most as many digits as `limit` and of value at most `limit`."""
    digits = str(limit)
    width = len(digits)
    branches = [f"[0-9]{{1,{width - 1}}}"] if width > 1 else []
    for at, digit in enumerate(digits):  # same prefix, a smaller digit here, then any
        if digit != "0":
            rest = width - at - 1
            branches.append(
                digits[:at] + f"[0-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else "")
            )
    branches.append(digits)
    return "|".join(branches)


def json_data(schema: dict[str, Any]) -> dict[str, Any]:
    """An event's `data` field: JSON text whose value matches `schema`."""
    return {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": schema,
    }
