"""Liveness, readiness and Prometheus metrics: the routes that need no key."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from api.deps import ClientsDep
from shared.heartbeat import WorkerHeartbeat
from shared.metrics import multiprocess_dir

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process can serve."""
    return {"status": "ok"}


@router.get("/readyz")
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
        fresh_after = time.time() - 3 * settings.heartbeat_s
        live = [b for b in map(_beat, beats.values()) if b is not None and b.ts >= fresh_after]
        live = await _connected(clients.redis, live)
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


def _beat(raw: str) -> WorkerHeartbeat | None:
    """A stored beat; None for one that is not (a foreign or damaged entry is no worker)."""
    try:
        return WorkerHeartbeat.model_validate_json(raw)
    except ValidationError:
        return None


async def _connected(redis: Redis, beats: list[WorkerHeartbeat]) -> list[WorkerHeartbeat]:
    """The beats whose worker still holds the Redis connection it beat on: a dead
    process's connection is gone at once, its last beat only ages (one CLIENT LIST ID
    round trip, O(workers); skipped where Redis refuses it, before 6.2 or by ACL)."""
    ids = [str(b.client_id) for b in beats if b.client_id]
    if not ids:
        return beats
    try:
        # redis-py's client_list(client_id=…) sends the ids as one argument, which Redis refuses
        listed = await redis.execute_command("CLIENT LIST", "ID", *ids)  # type: ignore[no-untyped-call]
    except ResponseError:
        return beats
    # the name too: ids start again from 1 when Redis restarts, names stay the worker's
    alive = {(str(c.get("id")), c.get("name")) for c in listed}
    return [b for b in beats if not b.client_id or (str(b.client_id), b.client_name) in alive]


@router.get("/metrics", response_class=PlainTextResponse)
def metrics() -> PlainTextResponse:  # sync: in multi-process mode it reads files
    """Prometheus metrics of the API: of every API process under `ragq serve --workers N`."""
    path = multiprocess_dir()
    registry = REGISTRY
    if path is not None:  # whichever process answers reports the sum over all of them
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
