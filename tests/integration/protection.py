"""What the protection tests share: settings that price the test LLM at $1 per completion
token (so a job's worst case is exact), submitting a job, and waiting on a test-LLM counter."""

from __future__ import annotations

from typing import Any

import httpx

from shared.config import Settings
from tests.conftest import MakeSettings
from tests.integration.conftest import auth

# $1 per completion token, prompts free: a job with max_tokens=10 costs exactly $10 at worst,
# and the test LLM, which honours max_tokens, makes every call cost exactly that
DOLLAR_PER_TOKEN = {"qwen2.5-7b-instruct": {"prompt_per_mtok": 0.0, "completion_per_mtok": 1e6}}
WORST_USD = 10.0


def llm_settings(make_settings: MakeSettings, testllm: str, **overrides: Any) -> Settings:
    """Settings that answer through this test LLM at $1 per completion token, no retries."""
    values: dict[str, Any] = {
        "llm_base_url": f"{testllm}/v1",
        "llm_prices": DOLLAR_PER_TOKEN,
        "daily_budget_usd": 100_000.0,
        "llm_retries": 0,
    }
    values.update(overrides)
    return make_settings(**values)


async def wait_stat(testllm: str, counter: str, minimum: int) -> None:
    """Block until the test LLM's counter reaches `minimum` (it answers when it does)."""
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.get(
            f"{testllm}/_stats", params={"wait": counter, "min": minimum, "timeout": 30}
        )
        assert response.status_code == 200, response.text


async def submit(api: httpx.AsyncClient, key: str, question: str, **body: Any) -> httpx.Response:
    """Submit a job with this question and body fields as this key."""
    return await api.post("/v1/jobs", json={"question": question, **body}, headers=auth(key))
