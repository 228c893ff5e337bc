"""Pure ASGI middleware: request ids and access logs, and body limits enforced while reading."""

from __future__ import annotations

import re
import secrets
import time

import structlog
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem
from shared.config import Settings

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
log = structlog.get_logger("api.http")


class RequestContextMiddleware:
    """Give every request an `X-Request-ID` (the client's if safe), bind it to the logs,
    echo it on the response with the RateLimit headers auth set, and log one line per request."""

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
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


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
            if scope["path"].rstrip("/") == "/v1/documents"
            else self.default_limit
        )
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = problem(
                None,
                413,
                "payload-too-large",
                "Payload too large",
                f"body of {declared} bytes is over this route's limit of {limit} bytes",
                request_id=scope.get("state", {}).get("request_id"),
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
