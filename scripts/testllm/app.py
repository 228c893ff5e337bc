"""The test LLM as a Starlette app: its routes, and the small endpoints (models, health,
`/_control`, `/_reset`, `/_stats`) beside the chat and embeddings ones.

`GET /_stats` answers the counters; with `?wait=COUNTER&min=N&max=M&timeout=S` it first
waits for the bounds, answering 408 if they are not met in time. `POST /_control` changes
a subset of the `Behaviour`; `POST /_reset` goes back to the start-up behaviour, counters
zeroed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scripts.testllm.answers import DEFAULT_MODEL
from scripts.testllm.chat import chat
from scripts.testllm.connection import install_log_filter
from scripts.testllm.embeddings import embeddings
from scripts.testllm.faults import Behaviour, updated
from scripts.testllm.replies import error
from scripts.testllm.state import COUNTERS, Runtime

OWNER = "ragq-test"
_MAX_WAIT_S = 300.0
Endpoint = Callable[[Runtime, Request], Awaitable[Response]]


async def models(rt: Runtime, request: Request) -> Response:
    """`GET /v1/models`: the one model this server answers as."""
    card = {"id": rt.model, "object": "model", "created": int(time.time()), "owned_by": OWNER}
    return JSONResponse({"object": "list", "data": [card]})


async def health(rt: Runtime, request: Request) -> Response:
    """`GET /health`: 200 once listening."""
    return Response(status_code=200)


async def control(rt: Runtime, request: Request) -> Response:
    """`POST /_control`: change some fields of the behaviour; answers the whole of it."""
    try:
        changes = await request.json()
    except ValueError:
        return error(400, "The request body is not valid JSON.")
    if not isinstance(changes, dict):
        return error(400, "The request body must be a JSON object.")
    try:
        rt.behaviour = updated(rt.behaviour, changes)
    except (TypeError, ValueError) as exc:
        return error(400, str(exc))
    return JSONResponse(dataclasses.asdict(rt.behaviour))


async def reset(rt: Runtime, request: Request) -> Response:
    """`POST /_reset`: the start-up behaviour again, counters zeroed."""
    rt.reset()
    return JSONResponse(dataclasses.asdict(rt.behaviour))


async def stats(rt: Runtime, request: Request) -> Response:
    """Counters; with `?wait=COUNTER&min=N&max=M&timeout=S`, first wait for the bounds."""
    params = request.query_params
    counter = params.get("wait")
    if counter is None:
        return JSONResponse(rt.snapshot())
    if counter not in COUNTERS:
        return error(400, f"unknown counter {counter!r}")
    try:
        low = int(params["min"]) if "min" in params else None
        high = int(params["max"]) if "max" in params else None
        timeout = min(float(params.get("timeout", "10")), _MAX_WAIT_S)
    except ValueError:
        return error(400, "`min`/`max` must be integers and `timeout` a number.")
    met = True
    try:
        async with asyncio.timeout(timeout):
            await rt.wait_until(counter, low, high)
    except TimeoutError:
        met = False
    return JSONResponse(rt.snapshot(), status_code=200 if met else 408)


ROUTES: list[tuple[str, Endpoint, str]] = [
    ("/v1/models", models, "GET"),
    ("/health", health, "GET"),
    ("/v1/chat/completions", chat, "POST"),
    ("/v1/embeddings", embeddings, "POST"),
    ("/_control", control, "POST"),
    ("/_reset", reset, "POST"),
    ("/_stats", stats, "GET"),
]


def create_app(behaviour: Behaviour | None = None, model: str = DEFAULT_MODEL) -> Starlette:
    """The test LLM as an ASGI app; its state lives in `app.state.testllm`."""
    install_log_filter()
    runtime = Runtime(behaviour or Behaviour(), model)
    routes = [
        Route(path, functools.partial(endpoint, runtime), methods=[method])
        for path, endpoint, method in ROUTES
    ]
    app = Starlette(routes=routes)
    app.state.testllm = runtime
    return app
