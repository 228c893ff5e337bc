"""Jobs through a failing LLM on real Redis: they degrade as `llm_unavailable`, then as
`circuit_open` without reaching the LLM once the breaker is open, and get the LLM's answer
again after the half-open probe closes it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.config import Settings
from shared.redis_keys import Keys
from tests.conftest import MakeSettings
from tests.integration.breakers import breaker_settings, chat_requests, end_open_period
from tests.integration.conftest import auth, finished, ingest
from tests.integration.test_job_path import ROTATION
from tests.integration.test_llm_path import control

pytestmark = pytest.mark.integration
StartWorker = Callable[[Settings], Awaitable[None]]


async def submit(api: httpx.AsyncClient, key: str, question: str) -> dict[str, Any]:
    """Submit a question and wait for its job to end."""
    posted = await api.post("/v1/jobs", json={"question": question}, headers=auth(key))
    assert posted.status_code == 202, posted.text
    return await finished(api, key, posted.json()["id"])


async def test_jobs_degrade_with_circuit_open_then_recover(
    api: httpx.AsyncClient,
    issue_key: Callable[..., Any],
    make_settings: MakeSettings,
    start_worker: StartWorker,
    testllm: str,
    redis: Redis,
    keys: Keys,
) -> None:
    """A failing LLM: the first 3 jobs degrade as llm_unavailable, then the breaker is
    open and jobs degrade as circuit_open at once, without reaching the LLM; once it
    recovers, the half-open probe closes the breaker and a job gets the LLM's answer."""
    await control(testllm, fail_status=503, fail_next=-1)
    settings = breaker_settings(make_settings, llm_base_url=f"{testllm}/v1")
    await start_worker(settings)
    key = await issue_key("acme")
    await ingest(api, key, ROTATION)
    # distinct questions, so no answer cache or request coalescing can stand in for a job
    failed = [await submit(api, key, f"What is VLT-4031? ({i})") for i in range(3)]
    refused = await submit(api, key, "What is VLT-4031? (refused)")
    requests_while_open = await chat_requests(testllm)
    await control(testllm, fail_next=0)
    await end_open_period(redis, keys, settings.llm_base_urls[0])
    job = await submit(api, key, "What is VLT-4031? (the probe)")
    assert [j["result"]["degraded_reason"] for j in failed] == ["llm_unavailable"] * 3
    assert (refused["status"], refused["result"]["degraded_reason"]) == (
        "completed",
        "circuit_open",
    )
    assert requests_while_open == 3  # the refused job never reached the LLM
    assert job["result"]["answer"].startswith("According to the sources, ")
    assert job["result"]["degraded_reason"] is None
