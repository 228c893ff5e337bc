"""Helpers of the circuit breaker tests: settings whose breaker opens on 3 failures and stays
open for the whole test, a second worker process's Redis client, one streamed call through
the LLM client, and ways to open a breaker or end its open period. The fixture is
registered under its short name (`second_redis`) by tests/integration/conftest.py.

A breaker opened in a test stays open however slow the machine (`LONG_OPEN_S`); a test of
the half-open state ends the open period with `end_open_period` instead of waiting it out,
so no outcome depends on how fast the test runs. That the open period is measured on Redis's
clock is checked by the scripts' own tests (test_lua_llm_endpoints.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from scripts.testllm import answer_for
from shared.clients import make_redis
from shared.config import Settings
from shared.redis_keys import Keys
from tests.conftest import MakeSettings
from workers.rag.breaker import CircuitBreaker
from workers.rag.llm import LLMClient
from workers.rag.replies import Completion

TARGET = "http://llm-0.test:8000/v1"
MESSAGES = [
    {"role": "system", "content": "Answer from the sources."},
    {
        "role": "user",
        "content": "Sources:\n[1] Rotate a signing key with vault keys rotate.\n"
        "Question: How do I rotate a signing key?",
    },
]
ANSWER = answer_for(MESSAGES)
LONG_OPEN_S = 3600.0  # seconds: longer than any test, however slow the machine


def breaker_settings(make_settings: MakeSettings, **overrides: Any) -> Settings:
    """Settings whose breaker opens on 3 failures in a row, the ratio kept out of the way."""
    values: dict[str, Any] = {
        "llm_retries": 0,
        "llm_retry_backoff_s": 0.0,
        "breaker_failures": 3,
        "breaker_min_calls": 1000,
        "breaker_open_s": LONG_OPEN_S,
    }
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture(name="second_redis")
async def second_redis_fixture(settings: Settings, redis: Redis) -> AsyncIterator[Redis]:
    """Another worker process's Redis client (its own pool), on the same test DB."""
    client = make_redis(settings)
    try:
        yield client
    finally:
        await client.aclose()


async def ask(llm: LLMClient, affinity: str = "a", tokens: list[str] | None = None) -> str:
    """One streamed answer through the client; `tokens` collects the deltas as they come."""
    seen = [] if tokens is None else tokens
    async for delta in llm.stream(
        MESSAGES,
        completion=Completion(model="qwen2.5-7b-instruct"),
        max_tokens=256,
        temperature=0,
        affinity=affinity,
    ):
        seen.append(delta)
    return "".join(seen)


async def error_of(call: Awaitable[object]) -> type[BaseException] | None:
    """The type of the exception `call` raises (None if it returns)."""
    try:
        await call
    except Exception as exc:
        return type(exc)
    return None


async def chat_requests(url: str) -> int:
    """How many chat requests the test LLM at `url` received."""
    async with httpx.AsyncClient() as client:
        return int((await client.get(f"{url}/_stats")).json()["chat_requests"])


async def open_breaker(breaker: CircuitBreaker, target: str, failures: int) -> None:
    """Record `failures` failed calls in a row."""
    for _ in range(failures):
        await breaker.record(target, False)


async def end_open_period(redis: Redis, keys: Keys, target: str) -> None:
    """End the open period of `target`'s breaker now, as if it had been waited out: its
    `open_until` (Redis ms, see workers.rag.breaker) moves into the past."""
    await redis.hset(keys.breaker(target), "open_until", 1)
