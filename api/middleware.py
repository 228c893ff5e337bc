"""Pure ASGI middleware: request ids, access logs and HTTP metrics, a header size limit,
and body limits enforced while reading."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import fastapi.routing
import structlog
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem, ragq_error_response
from shared.config import Settings
from shared.errors import HeadersTooLarge
from shared.metrics import HTTP_DURATION, HTTP_REQUESTS

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# label values stay bounded: any other method is "OTHER", any path no route matches "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
# routes that take whole documents get the documents' body limit; every other the jobs'
DOCUMENT_BODY_PATHS = frozenset({"/v1/documents", "/v1/documents/bulk"})
# FastAPI keeps included routers nested in `app.routes` and flattens them with this; older
# versions put every route in `app.routes` directly
_iter_routes: Any = getattr(fastapi.routing, "iter_route_contexts", iter)
log = structlog.get_logger("api.http")


def route_template(scope: Scope) -> str:
    """The template of the route that served the request (`/v1/jobs/{job_id}`), found by
    matching the app's routes when a middleware answered before routing (a 413), else
    `unmatched`: raw paths carry ids, which must never become label values."""
    route = scope.get("route")
    if isinstance(route, BaseRoute) and isinstance(path := getattr(route, "path", None), str):
        return path
    partial = UNMATCHED
    for candidate in _iter_routes(getattr(scope.get("app"), "routes", ())):
        match, _ = candidate.matches(scope)
        path = getattr(candidate, "path", None)
        if match == Match.FULL and isinstance(path, str):
            return path
        if match == Match.PARTIAL and partial == UNMATCHED and isinstance(path, str):
            partial = path  # the path exists with another method: the router answers 405
    return partial


class RequestContextMiddleware:
    """Give every request an `X-Request-ID` (the client's if safe), bind it to the logs,
    echo it on the response with the RateLimit headers auth set, log one line per request
    and count it in `ragq_http_*` by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).get("x-request-id", "")
        request_id = sent if _SAFE_ID.match(sent) else "req_" + secrets.token_hex(12)
        # a per-request copy, as uvicorn makes; not every server does (asgi-lifespan shares one)
        state = scope["state"] = {**scope.get("state", {}), "request_id": request_id}
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
                for name, value in state.get("ratelimit_headers", {}).items():
                    message["headers"].append((name.lower().encode(), value.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed_s = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = route_template(scope)
            HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
            HTTP_DURATION.labels(method=method, route=route).observe(elapsed_s)
            log.info(
                "http.request",
                method=scope["method"],
                route=route,
                path=scope["path"],
                status=status,
                latency_ms=round(elapsed_s * 1000, 1),
            )


class HeaderLimitMiddleware:
    """Refuse a request whose header fields (names plus values) total more than the limit
    with 431, before authentication, routing or the body: uvicorn with httptools sets no
    limit of its own. It sits inside `RequestContextMiddleware`, which only looks up
    `X-Request-ID`, so the refusal carries a request id and is logged and counted."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limit = settings.max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.limit:
                error = HeadersTooLarge(
                    f"request headers of {size} bytes are over the limit of {self.limit} bytes"
                )
                await ragq_error_response(Request(scope), error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuse bodies over the route's limit with 413 before reading them whole:
    at once from `Content-Length`, else as soon as the streamed bytes pass the limit."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.documents_limit = settings.max_document_body_bytes
        self.default_limit = settings.max_job_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (
            self.documents_limit
            if scope["path"].rstrip("/") in DOCUMENT_BODY_PATHS
            else self.default_limit
        )
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = problem(  # with the request: OpenAI's body on the OpenAI routes
                Request(scope),
                413,
                "payload-too-large",
                "Payload too large",
                f"body of {declared} bytes is over this route's limit of {limit} bytes",
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"body is over this route's limit of {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)
