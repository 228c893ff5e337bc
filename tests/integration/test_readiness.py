"""Readiness (`GET /readyz`) on real Redis with in-process workers: it follows the workers'
heartbeats, reports a degraded LLM while staying ready, and counts no damaged beat."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.clients import make_redis
from shared.config import Settings
from shared.redis_keys import Keys
from tests.conftest import MakeSettings, api_with
from tests.integration.breakers import LONG_OPEN_S

pytestmark = pytest.mark.integration


async def test_readiness_follows_the_workers(
    api: httpx.AsyncClient,
    settings: Settings,
    start_worker: Callable[[Settings], Awaitable[None]],
) -> None:
    """/readyz is 503 with no live worker and 200 once one heartbeats."""
    before = await api.get("/readyz")
    await start_worker(settings)
    after = await api.get("/readyz")
    assert before.status_code == 503
    assert before.json()["checks"]["workers"] == 0
    assert after.status_code == 200
    assert after.json()["checks"] == {
        "redis": "ok",
        "qdrant": "ok",
        "workers": 1,
        "llm": "not_configured",
    }


async def test_readiness_reports_a_degraded_llm_but_stays_ready(
    make_settings: MakeSettings,
    start_worker: Callable[[Settings], Awaitable[None]],
    testllm: str,
) -> None:
    """/readyz says `llm: ok` while the LLM answers and `degraded` once its breaker is open
    (or it cannot be reached), and stays 200 then: answers degrade instead of failing."""
    settings = make_settings(
        llm_base_url=f"{testllm}/v1", breaker_failures=1, breaker_open_s=LONG_OPEN_S
    )
    await start_worker(settings)
    async with api_with(settings) as api:
        healthy, degraded = await _ready_then_degraded(api, settings, testllm)
    assert healthy["checks"]["llm"] == "ok"
    assert degraded.status_code == 200
    assert degraded.json()["status"] == "ready"


async def _ready_then_degraded(
    api: httpx.AsyncClient, settings: Settings, testllm: str
) -> tuple[dict[str, Any], httpx.Response]:
    from tests.integration.test_llm_path import control
    from workers.rag.breaker import CircuitBreaker

    healthy = (await api.get("/readyz")).json()
    await control(testllm, fail_status=503, fail_next=-1)
    client = make_redis(settings)
    breaker = CircuitBreaker.from_settings(client, Keys(settings.key_prefix), settings)
    await breaker.record(f"{testllm}/v1", False)  # one failure opens it (breaker_failures=1)
    await client.aclose()
    # the API reads the workers' heartbeats: wait for the next one to carry the new state
    deadline = asyncio.get_running_loop().time() + 90  # many heartbeats, however slow
    while (degraded := await api.get("/readyz")).json()["checks"]["llm"] != "degraded":
        assert asyncio.get_running_loop().time() < deadline, degraded.text
        await asyncio.sleep(0.1)
    return healthy, degraded


async def test_a_damaged_or_foreign_beat_is_no_worker(
    api: httpx.AsyncClient, redis: Redis, keys: Keys
) -> None:
    """An entry of the workers hash that is no heartbeat (not JSON, or a beat without its
    time) counts as no worker: /readyz stays 503 and says so, never a 500."""
    await redis.hset(keys.workers, mapping={"w1": "not json", "w2": '{"queues": []}'})
    response = await api.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["workers"] == 0
