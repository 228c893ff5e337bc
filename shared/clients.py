"""Factories for the process-wide Redis client; entry points call them once and close them."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from shared.config import Settings

BLOCKING_READ_MAX_S = 15.0  # the longest XREAD BLOCK / BLPOP ragq issues
# Redis is away (down, restarting, loading its data, failing over to a replica), not wrong:
# the work in hand is interrupted, to be resumed once it answers again. Other Redis errors
# (a wrong type, a script error) are bugs and fail what raised them.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
)


def make_redis(
    settings: Settings,
    *,
    blocking: bool = False,
    max_connections: int | None = None,
    client_name: str | None = None,
) -> Redis:
    """A decoded-strings async Redis client with explicit timeouts and retries on blips.

    `blocking=True` gives the pool for blocking reads (XREAD BLOCK, BLPOP), whose socket
    timeout must outlast the longest block; ordinary commands fail fast on the other.
    `max_connections=1` with a `client_name` keeps one named connection for as long as it
    lives (it stands for the process, see `workers.lifecycle.beat`).
    """
    read_timeout = settings.redis_timeout_s + (BLOCKING_READ_MAX_S if blocking else 0)
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        decode_responses=True,
        max_connections=max_connections or settings.redis_max_connections,
        timeout=settings.redis_timeout_s,  # seconds to wait for a free connection
        socket_timeout=read_timeout,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        client_name=client_name,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return Redis.from_pool(pool)  # closing the client closes its pool
