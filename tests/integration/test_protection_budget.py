"""Budgets on real Redis with the test LLM: reserved before the call and settled after it,
so concurrent jobs never overspend; a cancelled job's reservation given back; the fallback
model once the budget is spent; and `GET /v1/usage`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from scripts.testllm import Behaviour, serve_testllm
from shared.config import Settings
from tests.conftest import MakeSettings, api_with
from tests.integration.conftest import auth, finished, ingest
from tests.integration.protection import (
    DOLLAR_PER_TOKEN,
    WORST_USD,
    llm_settings,
    submit,
    wait_stat,
)
from tests.integration.test_job_path import ROTATION
from tests.integration.test_llm_path import control, stats

pytestmark = pytest.mark.integration
StartWorker = Callable[[Settings], Awaitable[None]]


@pytest.mark.parametrize("policy", ["degrade", "reject"])
async def test_fifty_jobs_never_overspend_a_tenant_budget_of_ten(
    policy: str,
    make_settings: MakeSettings,
    start_worker: StartWorker,
    issue_key: Callable[..., Any],
    testllm: str,
) -> None:
    """50 concurrent jobs against a tenant budget that covers 10 worst-case jobs: exactly 10
    reach the LLM and the spend stays within the budget; the other 40 are degraded
    (`degrade`) or refused at submit with 429 budget-exhausted (`reject`)."""
    settings = llm_settings(make_settings, testllm, budget_policy=policy)
    await start_worker(settings)
    key = await issue_key("acme", daily_budget_usd=10 * WORST_USD)
    async with api_with(settings) as api:
        await ingest(api, key, ROTATION)
        body = {"max_tokens": 10, "temperature": 0.5}  # not cacheable: every job is its own
        responses = await asyncio.gather(
            *(submit(api, key, f"How do I rotate a signing key? ({i})", **body) for i in range(50))
        )
        accepted = [r.json()["id"] for r in responses if r.status_code == 202]
        refused = [r for r in responses if r.status_code != 202]
        jobs = [await finished(api, key, job_id) for job_id in accepted]
        usage = (await api.get("/v1/usage", headers=auth(key))).json()
    answered = [j for j in jobs if not j["result"]["degraded"]]
    degraded = [j for j in jobs if j["result"]["degraded"]]
    assert len(answered) == 10
    assert (await stats(testllm))["chat_requests"] == 10  # no job reached the LLM unreserved
    assert all(j["result"]["cost_usd"] == WORST_USD for j in answered)
    assert usage["spend_usd"] == 10 * WORST_USD <= usage["budget_usd"]
    if policy == "degrade":
        assert not refused
        assert len(degraded) == 40
        assert {j["result"]["degraded_reason"] for j in degraded} == {"budget_exhausted"}
    else:
        assert not degraded
        assert len(refused) == 40
        assert {r.status_code for r in refused} == {429}
        assert {r.json()["type"].rsplit("/", 1)[1] for r in refused} == {"budget-exhausted"}
        assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)


async def test_usage_reports_todays_requests_tokens_hits_and_spend(
    make_settings: MakeSettings,
    start_worker: StartWorker,
    issue_key: Callable[..., Any],
    testllm: str,
) -> None:
    """`GET /v1/usage` counts the tenant's jobs, tokens, cache hits and spend, and no other
    tenant's."""
    settings = llm_settings(make_settings, testllm)
    await start_worker(settings)
    key = await issue_key("acme", daily_budget_usd=500.0)
    other = await issue_key("globex")
    async with api_with(settings) as api:
        await ingest(api, key, ROTATION)
        body = {"max_tokens": 10}
        first = await finished(
            api, key, (await submit(api, key, "What is VLT-4031?", **body)).json()["id"]
        )
        await submit(api, key, "What is VLT-4031?", **body)  # a cache hit
        usage = (await api.get("/v1/usage", headers=auth(key))).json()
        theirs = (await api.get("/v1/usage", headers=auth(other))).json()
    assert usage["tenant"] == "acme"
    assert usage["requests"] == 2
    assert usage["jobs"] == {"completed": 2, "failed": 0}
    assert usage["tokens"]["completion"] == 10
    assert usage["tokens"]["prompt"] == first["result"]["usage"]["prompt_tokens"] > 0
    assert usage["cache_hits"] == 1
    assert usage["spend_usd"] == WORST_USD
    assert usage["budget_usd"] == 500.0
    assert (theirs["requests"], theirs["spend_usd"], theirs["budget_usd"]) == (0, 0.0, 100_000.0)


async def test_fallback_model_answers_once_the_budget_is_spent(
    make_settings: MakeSettings,
    start_worker: StartWorker,
    issue_key: Callable[..., Any],
    testllm: str,
) -> None:
    """Policy `fallback_model`: once a tenant's budget cannot cover the main model, jobs are
    answered by the cheaper fallback endpoint and model (free here) instead of degrading."""
    prices = {**DOLLAR_PER_TOKEN, "tiny": {"prompt_per_mtok": 0.0, "completion_per_mtok": 0.0}}
    async with serve_testllm(Behaviour(), model="tiny") as cheap:
        settings = llm_settings(
            make_settings,
            testllm,
            budget_policy="fallback_model",
            fallback_llm_base_url=f"{cheap}/v1",
            fallback_llm_model="tiny",
            llm_prices=prices,
        )
        await start_worker(settings)
        key = await issue_key("acme", daily_budget_usd=WORST_USD)
        jobs = await _three_jobs(settings, key)
        cheap_calls = (await stats(cheap))["chat_requests"]
    assert [j["result"]["model"] for j in jobs] == ["qwen2.5-7b-instruct", "tiny", "tiny"]
    assert [j["result"]["degraded"] for j in jobs] == [False, False, False]
    assert [j["result"]["cost_usd"] for j in jobs] == [WORST_USD, 0.0, 0.0]
    assert cheap_calls == 2


async def _three_jobs(settings: Settings, key: str) -> list[dict[str, Any]]:
    async with api_with(settings) as api:
        await ingest(api, key, ROTATION)
        body = {"max_tokens": 10, "temperature": 0.5}
        jobs = [
            await finished(
                api, key, (await submit(api, key, f"VLT-4031? {i}", **body)).json()["id"]
            )
            for i in range(3)
        ]
    return jobs


async def test_a_cancelled_job_gives_its_reservation_back(
    make_settings: MakeSettings,
    start_worker: StartWorker,
    issue_key: Callable[..., Any],
    testllm: str,
) -> None:
    """Policy `reject` reserves at submit: cancelling a job, queued or running, before the LLM
    produced anything returns the reservation, so the budget admits the next job."""
    settings = llm_settings(make_settings, testllm, budget_policy="reject")
    key = await issue_key("acme", daily_budget_usd=WORST_USD)
    body = {"max_tokens": 10, "temperature": 0.5}
    async with api_with(settings) as api:
        queued = (await submit(api, key, "a", **body)).json()
        refused_while_queued = await submit(api, key, "b", **body)
        await api.post(f"/v1/jobs/{queued['id']}/cancel", headers=auth(key))
        spend_after_queued_cancel = (await api.get("/v1/usage", headers=auth(key))).json()

        await control(testllm, hang=True)
        await start_worker(settings)
        running = (await submit(api, key, "c", **body)).json()
        await wait_stat(testllm, "chat_in_flight", 1)
        refused_while_running = await submit(api, key, "d", **body)
        await api.post(f"/v1/jobs/{running['id']}/cancel", headers=auth(key))
        await control(testllm, hang=False)
        deadline = asyncio.get_running_loop().time() + 30
        # the running job's worker settles on the cancel message: poll for it, bounded
        while (last := await submit(api, key, "e", **body)).status_code == 429:
            assert asyncio.get_running_loop().time() < deadline, "the reservation never came back"
            await asyncio.sleep(0.05)
        done = await finished(api, key, last.json()["id"])
    assert refused_while_queued.status_code == 429
    assert spend_after_queued_cancel["spend_usd"] == 0.0
    assert refused_while_running.status_code == 429
    assert done["result"]["degraded"] is False
    assert 0 < done["result"]["cost_usd"] <= WORST_USD
