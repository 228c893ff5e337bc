"""Every error the API returns, as RFC 9457 problem+json, mapped in one table."""

from __future__ import annotations

from typing import Any

import fastapi.routing
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from shared import errors

PROBLEM_BASE = "https://ragq.dev/problems/"
log = structlog.get_logger("api.errors")

# domain error → (status, problem type, title)
PROBLEMS: dict[type[errors.RagqError], tuple[int, str, str]] = {
    errors.Unauthorized: (401, "unauthorized", "Unauthorized"),
    errors.NotFound: (404, "not-found", "Not found"),
    errors.Conflict: (409, "conflict", "Conflict"),
    errors.PayloadTooLarge: (413, "payload-too-large", "Payload too large"),
    errors.UnsupportedMediaType: (415, "unsupported-media-type", "Unsupported media type"),
    errors.InvalidInput: (422, "validation-error", "Validation error"),
    errors.RateLimited: (429, "rate-limited", "Rate limit exceeded"),
    errors.BudgetExhausted: (429, "budget-exhausted", "Budget exhausted"),
    errors.Overloaded: (429, "overloaded", "Overloaded"),
    errors.HeadersTooLarge: (431, "headers-too-large", "Request header fields too large"),
    errors.NotReady: (503, "not-ready", "Not ready"),
    errors.Timeout: (504, "timeout", "Timeout"),
    errors.UpstreamError: (502, "upstream-error", "Upstream error"),
}

_HTTP_STATUS: dict[int, tuple[str, str]] = {
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


# routes that answer errors in OpenAI's shape, for the SDKs and UIs that call them
OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/models"})
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def _openai_error(
    status: int, type_: str, detail: str, headers: dict[str, str] | None
) -> JSONResponse:
    """OpenAI's error body; its invalid requests are 400 (a 422 elsewhere in ragq)."""
    status = 400 if status == 422 else status
    kind = _OPENAI_TYPES.get(status, "api_error")
    body = {"error": {"message": detail, "type": kind, "param": None, "code": type_}}
    return JSONResponse(body, status_code=status, headers=headers)


def problem(
    request: Request | None,
    status: int,
    type_: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response that carries the request id (OpenAI's error body on the
    OpenAI-compatible routes)."""
    if request is not None and request.url.path in OPENAI_PATHS:
        return _openai_error(status, type_, detail, headers)
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + type_,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": getattr(request.state, "request_id", None) if request else None,
        **extra,
    }
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


def ragq_error_response(request: Request | None, exc: errors.RagqError) -> JSONResponse:
    """The problem response of a domain error."""
    status, type_, title = next(
        (v for cls, v in PROBLEMS.items() if isinstance(exc, cls)), (500, "internal", "Error")
    )
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return problem(request, status, type_, title, exc.detail, headers=headers, **exc.extra)


async def _on_ragq_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.RagqError)
    return ragq_error_response(request, exc)


def _message(error: dict[str, Any]) -> str:
    """A field error's message; for a body that is not JSON, with the parser's reason."""
    reason = error.get("ctx", {}).get("error") if error.get("type") == "json_invalid" else None
    return f"{error.get('msg', '')}: {reason}" if reason else str(error.get("msg", ""))


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": _message(e),
            "type": e.get("type", ""),
        }
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(f['loc'])}: {f['msg']}" for f in fields)
    return problem(
        request, 422, "validation-error", "Validation error", detail or "invalid", errors=fields
    )


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, ClientDisconnect):  # FastAPI's 400 for a body cut short
        return await _on_client_disconnect(request, exc)
    if exc.status_code == 400:  # FastAPI could not decode the body (e.g. not UTF-8)
        detail = "The request body could not be read: send UTF-8 JSON."
        error = {"loc": ["body"], "msg": detail, "type": "body_decode"}
        return problem(request, 422, "validation-error", "Validation error", detail, errors=[error])
    type_, title = _HTTP_STATUS.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:  # the router names the methods of its first match only
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return problem(request, exc.status_code, type_, title, detail, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """RFC 9110's `Allow`: the methods of every route of the path template the request's
    path matches first (`/v1/documents/bulk` before `/v1/documents/{document_id}`, as
    OpenAPI matches concrete paths first)."""
    # FastAPI keeps included routers nested in `app.routes`; this flattens them
    routes: Any = getattr(fastapi.routing, "iter_route_contexts", iter)(request.app.routes)
    template: str | None = None
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(request.scope)
        if match == Match.NONE:
            continue
        template = template or getattr(route, "path", None)
        if getattr(route, "path", None) == template:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


# nginx's status for it: the access log and the metrics show a hang-up, never a 5xx
CLIENT_CLOSED_REQUEST = 499


async def _on_client_disconnect(request: Request, exc: Exception) -> Response:
    """The client hung up before its request was read whole: nobody is left to answer."""
    log.info("http.client_disconnected", path=request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("http.unhandled", error=type(exc).__name__)
    return problem(request, 500, "internal", "Internal error", "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error leave the app as problem+json."""
    app.add_exception_handler(errors.RagqError, _on_ragq_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(ClientDisconnect, _on_client_disconnect)
    app.add_exception_handler(Exception, _on_unexpected)
