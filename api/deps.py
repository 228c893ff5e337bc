"""Request dependencies: lifespan-owned clients and the caller's tenant; they never construct."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis

from api.ratelimit import RateLimiter
from shared.answercache import AnswerCache
from shared.apikeys import ApiKey, ApiKeyStore
from shared.budget import Budgets
from shared.config import Settings
from shared.documents import DocumentStore
from shared.errors import RateLimited, Unauthorized
from shared.jobstore import JobStore
from shared.metrics import ADMISSION_REJECTIONS
from shared.pricing import PriceTable
from shared.queue import Enqueuer
from shared.redis_keys import Keys


@dataclass(frozen=True, slots=True)
class Clients:
    """Everything the API process opened at start-up, closed at shutdown."""

    settings: Settings
    keys: Keys
    redis: Redis
    redis_blocking: Redis  # XREAD BLOCK for long polls and SSE; longer socket timeout
    jobs: JobStore
    documents: DocumentStore
    api_keys: ApiKeyStore
    budgets: Budgets
    answers: AnswerCache
    prices: PriceTable
    enqueuer: Enqueuer
    limiter: RateLimiter


async def get_clients(request: Request) -> Clients:
    """The process's clients, from lifespan state (async: a plain `def` dependency would
    run in a worker thread on every request)."""
    clients: Clients = request.state.clients
    return clients


ClientsDep = Annotated[Clients, Depends(get_clients)]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")


async def get_api_key(
    request: Request,
    clients: ClientsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> ApiKey:
    """The caller's key record; 401 when missing, unknown or revoked, 429 over its rate."""
    presented = bearer.credentials if bearer else header
    if not presented:
        raise Unauthorized("An API key is required: send `Authorization: Bearer <key>`.")
    record = await clients.api_keys.lookup(presented)
    if record is None:
        raise Unauthorized("The API key is unknown or revoked.")
    structlog.contextvars.bind_contextvars(tenant=record.tenant)
    request.state.tenant = record.tenant
    rpm = record.rpm or clients.settings.default_rpm
    if rpm:  # 0 = unlimited, and then no RateLimit headers
        decision = await clients.limiter.hit(record.key_id, rpm)
        request.state.ratelimit_headers = decision.headers()  # sent by RequestContextMiddleware
        if not decision.allowed:
            ADMISSION_REJECTIONS.labels(reason="rate_limited").inc()
            raise RateLimited(
                f"{rpm} requests per minute for this key", retry_after=decision.reset_s
            )
    return record


ApiKeyDep = Annotated[ApiKey, Depends(get_api_key)]


async def get_tenant(key: ApiKeyDep) -> str:
    """The tenant the caller's key belongs to."""
    return key.tenant


TenantDep = Annotated[str, Depends(get_tenant)]
