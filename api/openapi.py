"""The OpenAPI document, made exact: what every operation can answer, with the layer that
answers it, on top of what FastAPI derives from the routes and their `responses=`.

- Every operation: 413 and 431 (the body and header limits of api/middleware.py run before
  routing), and `X-Request-ID` on every response.
- Every operation behind a key: 401 and 429 (api/deps.py), 503 when Redis is down
  (api/app.py), and the `RateLimit-*` headers.
- 422 (problem+json with `errors`, not FastAPI's `HTTPValidationError`) only where a
  parameter or the body can fail validation; 400 in OpenAI's shape on the OpenAI routes.
- Dicts with constrained keys say so with `propertyNames` (pydantic writes
  `patternProperties`, which leaves other keys unconstrained), and `model` lists the models
  a request may name.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from api.errors import OPENAI_PATHS
from api.responses import COMPONENTS, Responses, header, openai_errors, problems
from api.routes.openai import DEFAULT_MODEL
from shared.config import Settings
from shared.tiers import llm_targets

_REQUEST_ID = header(
    "The request's id: the client's `X-Request-ID` if it sent a safe one, else a new one.",
    type="string",
    pattern=r"^[A-Za-z0-9._:\-]{1,128}$",
)
_RATE_LIMIT = {
    "RateLimit-Limit": "Requests per minute this key may send.",
    "RateLimit-Remaining": "Requests left in the current minute.",
    "RateLimit-Reset": "Seconds until a slot frees.",
}
_EVERY: dict[int, str] = {
    413: "The body is over this route's limit (from `Content-Length`, or while it streams)",
    431: "The request's header fields are over `RAGQ_MAX_HEADER_BYTES`",
}
_KEYED: dict[int, str] = {
    401: "No key, or an unknown or revoked key",
    429: "The key's request rate is exhausted (and, where a job is submitted, its "
    "concurrent jobs, the queue or the budget): `Retry-After`",
    503: "Redis is unavailable",
}
_ANNOTATIONS = frozenset({"title", "description", "default", "examples"})
_UNCONSTRAINED = ({"type": "string"},)


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Serve the exact document at `/openapi.json` (built once, on first use)."""
    build = app.openapi  # FastAPI's own, from the routes
    models = sorted({model for target in llm_targets(settings).values() for model in target.models})
    built: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not built:
            built.append(exact(copy.deepcopy(build()), models))
        return built[0]

    app.openapi = openapi  # type: ignore[method-assign]


def exact(document: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """The document FastAPI built, with every response an operation can give."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(copy.deepcopy(COMPONENTS))
    _name_models(schemas, models)
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            _complete(path, operation)
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, replaced
        schemas.pop(unused, None)
    _constrained_keys(document)
    return document


def _complete(path: str, operation: dict[str, Any]) -> None:
    """Add the responses the layers in front of the route give, to one operation."""
    openai = path in OPENAI_PATHS
    errors = openai_errors if openai else problems
    for parameter in operation.get("parameters", []):
        _not_null(parameter)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    default = responses.get("422", {}).get("content", {}).get("application/json", {})
    if default.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        del responses["422"]
        if _can_fail_validation(operation):
            if openai:
                invalid = {400: "Invalid request (`invalid_request_error`)"}
            else:
                invalid = {422: "A parameter or the body breaks the schema"}
            _add(responses, errors(invalid))
    keyed = bool(operation.get("security"))
    _add(responses, errors(_EVERY | (_KEYED if keyed else {})))
    for response in responses.values():
        headers = response.setdefault("headers", {})
        headers.setdefault("X-Request-ID", _REQUEST_ID)
        if keyed:
            for name, text in _RATE_LIMIT.items():
                headers.setdefault(name, header(text, required=False, type="integer", minimum=0))
    operation["responses"] = dict(sorted(responses.items()))


def _add(responses: dict[str, Any], extra: Responses) -> None:
    for status, response in extra.items():
        responses.setdefault(str(status), response)


def _not_null(parameter: dict[str, Any]) -> None:
    """An optional parameter is left out, never null: `str | None` is a string."""
    schema = parameter.get("schema", {})
    branches = schema.get("anyOf", [])
    if len(branches) == 2 and {"type": "null"} in branches:
        schema.pop("anyOf")
        schema.update(next(b for b in branches if b != {"type": "null"}))


def _can_fail_validation(operation: dict[str, Any]) -> bool:
    """True when the body, or a parameter that is more than any string, can be refused."""
    if "requestBody" in operation:
        return True
    for parameter in operation.get("parameters", []):
        schema = {k: v for k, v in parameter.get("schema", {}).items() if k not in _ANNOTATIONS}
        if schema not in _UNCONSTRAINED:
            return True
    return False


def _name_models(schemas: dict[str, Any], models: list[str]) -> None:
    """`model` is one the key's tier serves (else 422): list them all (GET /v1/models lists
    a key's own)."""
    for name in ("JobCreate", "RagCreate"):
        schemas[name]["properties"]["model"]["anyOf"] = [
            {"type": "string", "enum": models},
            {"type": "null"},
        ]
    chat = schemas["ChatRequest"]["properties"]["model"]
    chat["enum"] = [DEFAULT_MODEL, *models]


def _constrained_keys(node: Any) -> None:
    """Rewrite pydantic's `dict[Key, Value]` (one `patternProperties` entry) as what it
    validates: every key matches the pattern, every value the schema."""
    if isinstance(node, list):
        for item in node:
            _constrained_keys(item)
        return
    if not isinstance(node, dict):
        return
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in node:
        ((pattern, values),) = patterns.items()
        node["propertyNames"] = {**node.get("propertyNames", {}), "pattern": pattern}
        node["additionalProperties"] = values
        del node["patternProperties"]
    for value in node.values():
        _constrained_keys(value)
