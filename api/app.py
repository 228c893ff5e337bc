"""The FastAPI application factory; its lifespan is the only place the API opens clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.deps import Clients
from api.errors import install_error_handlers, ragq_error_response
from api.middleware import BodyLimitMiddleware, HeaderLimitMiddleware, RequestContextMiddleware
from api.openapi import install_openapi
from api.ratelimit import RateLimiter
from api.routes import (
    document_content,
    documents,
    documents_bulk,
    health,
    jobs,
    openai,
    playground,
    usage,
)
from shared.answercache import AnswerCache
from shared.apikeys import ApiKeyStore
from shared.budget import Budgets
from shared.clients import make_redis
from shared.config import Settings, get_settings
from shared.documents import DocumentStore
from shared.errors import NotReady
from shared.jobstore import JobStore
from shared.logging import configure_logging, get_logger
from shared.metrics import GaugeRefresher, mark_process_exited, prime_api
from shared.pricing import PriceTable
from shared.queue import Enqueuer
from shared.redis_keys import QUEUES, Keys

DOCS_ASSETS = "/static/docs"  # swagger-ui and redoc scripts, styles and favicon

log = get_logger("api.app")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; `uvicorn --factory api.app:create_app` calls it with no arguments."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        keys = Keys(settings.key_prefix)
        redis = make_redis(settings)
        redis_blocking = make_redis(settings, blocking=True)
        clients = Clients(
            settings=settings,
            keys=keys,
            redis=redis,
            redis_blocking=redis_blocking,
            jobs=JobStore(
                redis,
                keys,
                ttl_s=settings.result_ttl_s,
                events_max_len=settings.events_max_len,
                blocking=redis_blocking,
            ),
            documents=DocumentStore(redis, keys),
            api_keys=ApiKeyStore(redis, keys),
            budgets=Budgets(redis, keys, service_cap_usd=settings.daily_budget_usd),
            answers=AnswerCache(redis, keys, ttl_s=settings.answer_cache_ttl_s),
            prices=PriceTable(settings),
            enqueuer=Enqueuer(redis, keys),
            limiter=RateLimiter(redis, keys),
        )
        prime_api()
        gauges = GaugeRefresher(redis, keys, QUEUES).start()  # ragq_queue_depth, spend
        log.info("api.started", redis=settings.redis_url.split("@")[-1])
        try:
            yield {"clients": clients}
        finally:
            await gauges.aclose()
            mark_process_exited()
            await redis.aclose()
            await redis_blocking.aclose()
            log.info("api.stopped")

    # /docs and /redoc load their scripts and styles from ragq itself (fastapi-offline ships
    # them), not from a CDN that a machine without internet cannot reach
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="ragq",
        version="0.1.0",
        summary="Retrieval-augmented answers over your documents, queued and streamed.",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("redis.unavailable", error=str(exc))
        return ragq_error_response(request, NotReady("Redis is unavailable.", retry_after=1))

    app.add_exception_handler(RedisConnectionError, redis_down)
    app.add_exception_handler(RedisTimeoutError, redis_down)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(documents_bulk.router)  # before /v1/documents/{document_id}
    app.include_router(documents.router)
    app.include_router(usage.router)
    app.include_router(openai.router)
    app.include_router(document_content.router)
    app.include_router(playground.router)  # `/` and /static/playground/: no key
    install_openapi(app, settings)  # every status and content type each operation answers
    # the last added runs first: request id and access log, then the header limit, then bodies
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(HeaderLimitMiddleware, settings=settings)
    app.add_middleware(RequestContextMiddleware)
    return app
