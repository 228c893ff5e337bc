"""Fixtures shared by every test tier: settings on a dedicated Redis DB, the app, keys.

Tests talk to the real Redis at RAGQ_TEST_REDIS_URL (default DB 13 of the local
server); each test starts from an empty DB and leaves it empty.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from starlette.types import ASGIApp

from shared.apikeys import ApiKeyStore
from shared.config import Settings
from shared.redis_keys import Keys

TEST_REDIS_URL = os.environ.get("RAGQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path) -> MakeSettings:
    """Build test settings; keyword arguments override the defaults."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": TEST_REDIS_URL,
            "key_prefix": "ragqtest",
            "qdrant_path": tmp_path / "qdrant",
            "heartbeat_s": 0.5,
            "log_level": "warning",
            "worker_drain_s": 0,
            "worker_metrics_port": 0,  # in-process workers: no exporter port to collide on
            "default_rpm": 0,  # tests send many requests with one key; rate-limit tests set it
            # a loaded machine drains slowly: shedding by estimated wait is tested on its own
            "max_queue_wait_s": 0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    """Default test settings (no LLM: extractive answers)."""
    return make_settings()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """A client of the test DB, emptied before and after the test."""
    client = Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
def keys(settings: Settings) -> Keys:
    """Key names of the test prefix."""
    return Keys(settings.key_prefix)


@pytest.fixture
async def issue_key(redis: Redis, keys: Keys) -> Callable[..., Any]:
    """Issue an API key for a tenant: `await issue_key("acme")`."""
    store = ApiKeyStore(redis, keys)

    async def issue(tenant: str, **limits: Any) -> str:
        key, _ = await store.create(tenant, **limits)
        return key

    return issue


@contextlib.asynccontextmanager
async def app_with(settings: Settings) -> AsyncIterator[tuple[ASGIApp, httpx.AsyncClient]]:
    """The app with these settings in-process, lifespan running, and an httpx client of it
    (the app too, for tests that drive it at the ASGI level)."""
    from api.app import create_app

    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://ragq.test"
        ) as client,
    ):
        yield manager.app, client


@contextlib.asynccontextmanager
async def api_with(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with these settings in-process, lifespan running, behind an httpx client."""
    async with app_with(settings) as (_, client):
        yield client


@pytest.fixture
async def api(settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with the default test settings."""
    async with api_with(settings) as client:
        yield client
