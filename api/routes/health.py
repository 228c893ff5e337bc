"""Liveness, readiness and Prometheus metrics: the routes that need no key."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from redis.exceptions import RedisError

from api.deps import ClientsDep
from api.responses import RETRY_AFTER
from shared.metrics import multiprocess_dir
from shared.workerliveness import live_beats

router = APIRouter(tags=["operations"])
READINESS = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"enum": ["ready", "not_ready"]},
        "checks": {
            "type": "object",
            "required": ["redis", "qdrant", "workers", "llm"],
            "properties": {
                "redis": {"enum": ["ok", "error"]},
                "qdrant": {"enum": ["ok", "error", "unknown"]},
                "workers": {"type": "integer", "minimum": 0},
                "llm": {"enum": ["ok", "degraded", "not_configured", "unknown"]},
            },
        },
    },
}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process can serve."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        200: {"content": {"application/json": {"schema": READINESS}}},
        503: {
            "description": "Not ready: Redis is down, or no worker is live",
            "content": {"application/json": {"schema": READINESS}},
            "headers": {"Retry-After": RETRY_AFTER},
        },
    },
)
async def readyz(clients: ClientsDep) -> JSONResponse:
    """Readiness: Redis answers and at least one worker is alive."""
    settings = clients.settings
    checks: dict[str, str | int] = {
        "redis": "ok",
        "qdrant": "unknown",
        "workers": 0,
        "llm": "not_configured" if not settings.llm_base_urls else "unknown",
    }
    try:
        await clients.redis.ping()
        beats = await clients.redis.hgetall(clients.keys.workers)  # type: ignore[misc]
        live = await live_beats(clients.redis, beats.values(), settings.heartbeat_s)
    except RedisError:
        checks["redis"] = "error"
        live = []
    checks["workers"] = len(live)
    if live:
        checks["qdrant"] = "ok" if any(b.qdrant == "ok" for b in live) else "error"
        if settings.llm_base_urls:
            checks["llm"] = "ok" if any(b.llm == "ok" for b in live) else "degraded"
    ready = checks["redis"] == "ok" and len(live) > 0 and checks["qdrant"] == "ok"
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    headers = None if ready else {"Retry-After": "5"}
    return JSONResponse(body, status_code=200 if ready else 503, headers=headers)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics() -> PlainTextResponse:  # sync: in multi-process mode it reads files
    """Prometheus metrics of the API: of every API process under `ragq serve --workers N`."""
    path = multiprocess_dir()
    registry = REGISTRY
    if path is not None:  # whichever process answers reports the sum over all of them
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
