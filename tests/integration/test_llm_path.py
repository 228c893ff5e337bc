"""Answers through the LLM (the project's test server): streaming, usage, prompt shape,
and the extractive fallback when the LLM fails or hangs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from shared.config import Settings
from tests.conftest import MakeSettings
from tests.integration.conftest import auth, finished, ingest, sse_events
from tests.integration.test_job_path import ROTATION
from workers.rag.prompt import SYSTEM_PROMPT

pytestmark = pytest.mark.integration
StartWorker = Callable[[Settings], Awaitable[None]]


async def control(testllm: str, **behaviour: Any) -> None:
    """Change the test LLM's behaviour."""
    async with httpx.AsyncClient() as client:
        (await client.post(f"{testllm}/_control", json=behaviour)).raise_for_status()


async def stats(testllm: str) -> dict[str, Any]:
    """The test LLM's counters."""
    async with httpx.AsyncClient() as client:
        return dict((await client.get(f"{testllm}/_stats")).json())


async def test_llm_answer_streams_with_usage_and_a_stable_prompt(
    api: httpx.AsyncClient,
    issue_key: Callable[..., Any],
    make_settings: MakeSettings,
    start_worker: StartWorker,
    testllm: str,
) -> None:
    """With an LLM configured the answer comes from it, cites [1], reports usage, and
    the prompt starts with the fixed system prompt followed by the numbered sources."""
    await start_worker(make_settings(llm_base_url=f"{testllm}/v1"))
    key = await issue_key("acme")
    await ingest(api, key, ROTATION)
    job_id = (
        await api.post("/v1/jobs", json={"question": "What is VLT-4031?"}, headers=auth(key))
    ).json()["id"]
    job = await finished(api, key, job_id)
    events = await sse_events(api, key, job_id)
    prompt = (await stats(testllm))["last_request"]["messages"]
    result = job["result"]
    deltas = [d["delta"] for _, name, d in events if name == "answer.delta"]
    assert result["degraded"] is False
    assert result["model"] == "qwen2.5-7b-instruct"
    assert result["answer"].startswith("According to the sources, ")
    assert "[1]" in result["answer"]
    assert len(deltas) > 1
    assert "".join(deltas) == result["answer"]
    assert result["usage"]["completion_tokens"] >= len(deltas)  # tokens come batched
    assert result["usage"]["prompt_tokens"] > 0
    assert prompt[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert prompt[1]["content"].startswith("Sources:\n[1] (Rotating signing keys")


async def test_failing_llm_degrades_to_an_extractive_answer(
    api: httpx.AsyncClient,
    issue_key: Callable[..., Any],
    make_settings: MakeSettings,
    start_worker: StartWorker,
    testllm: str,
) -> None:
    """An LLM answering 503 yields a completed job with degraded_reason llm_unavailable
    and an answer built from the cited chunks."""
    await control(testllm, fail_status=503, fail_next=-1)
    await start_worker(make_settings(llm_base_url=f"{testllm}/v1"))
    key = await issue_key("acme")
    await ingest(api, key, ROTATION)
    response = await api.post("/v1/rag", json={"question": "What is VLT-4031?"}, headers=auth(key))
    body = response.json()
    assert response.status_code == 200
    assert (body["degraded"], body["degraded_reason"]) == (True, "llm_unavailable")
    assert "VLT-4031" in body["answer"]
    assert "[1]" in body["answer"]


async def test_hanging_llm_degrades_after_its_timeout(
    api: httpx.AsyncClient,
    issue_key: Callable[..., Any],
    make_settings: MakeSettings,
    start_worker: StartWorker,
    testllm: str,
) -> None:
    """An LLM that never answers is abandoned after RAGQ_LLM_TIMEOUT_S: llm_timeout."""
    await control(testllm, hang=True)
    await start_worker(make_settings(llm_base_url=f"{testllm}/v1", llm_timeout_s=0.5))
    key = await issue_key("acme")
    await ingest(api, key, ROTATION)
    body = (await api.post("/v1/rag", json={"question": "VLT-4031"}, headers=auth(key))).json()
    assert (body["degraded"], body["degraded_reason"]) == (True, "llm_timeout")


async def test_unknown_model_is_refused(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """A model that is not configured gets 422 naming the field."""
    key = await issue_key("acme")
    response = await api.post(
        "/v1/jobs", json={"question": "q", "model": "gpt-17"}, headers=auth(key)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "model"]
