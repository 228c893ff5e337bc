"""Protection and cost on real Redis with the test LLM: budgets reserved before the call and
settled after it, the answer cache and coalescing of identical requests, admission control
with a drain-rate Retry-After, per-key concurrency caps, and `GET /v1/usage`."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from scripts.testllm import Behaviour, serve_testllm
from shared.config import Settings
from tests.conftest import MakeSettings, api_with
from tests.integration.conftest import auth, finished, ingest, sse_events
from tests.integration.test_job_path import ROTATION
from tests.integration.test_llm_path import control, stats

pytestmark = pytest.mark.integration
StartWorker = Callable[[Settings], Awaitable[None]]

# $1 per completion token, prompts free: a job with max_tokens=10 costs exactly $10 at worst,
# and the test LLM, which honours max_tokens, makes every call cost exactly that
DOLLAR_PER_TOKEN = {"qwen2.5-7b-instruct": {"prompt_per_mtok": 0.0, "completion_per_mtok": 1e6}}
WORST_USD = 10.0


def llm_settings(make_settings: MakeSettings, testllm: str, **overrides: Any) -> Settings:
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
    return await api.post("/v1/jobs", json={"question": question, **body}, headers=auth(key))


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


async def test_identical_requests_share_one_llm_call_until_the_corpus_changes(
    make_settings: MakeSettings,
    start_worker: StartWorker,
    issue_key: Callable[..., Any],
    testllm: str,
) -> None:
    """20 identical temperature-0 requests at once cause one LLM call and one answer (their
    event streams say the same); after an ingest in the tenant the same request calls the LLM
    again; temperature 0.7 is never cached."""
    settings = llm_settings(make_settings, testllm)
    await start_worker(settings)
    key = await issue_key("acme")
    await control(testllm, token_latency_ms=20)  # the first is still running when the rest come
    async with api_with(settings) as api:
        await ingest(api, key, ROTATION)
        question = "How do I rotate a signing key?"
        responses = await asyncio.gather(*(submit(api, key, question) for _ in range(20)))
        assert {r.status_code for r in responses} == {202}
        jobs = [await finished(api, key, r.json()["id"]) for r in responses]
        calls_after_burst = (await stats(testllm))["chat_requests"]
        follower = next(j for j in jobs if j["result"]["cached"])
        streamed = await sse_events(api, key, follower["id"])
        repeat = await finished(api, key, (await submit(api, key, question)).json()["id"])
        calls_after_repeat = (await stats(testllm))["chat_requests"]

        await ingest(api, key, {"id": "other", "title": "Other", "text": "Unrelated text."})
        fresh = await finished(api, key, (await submit(api, key, question)).json()["id"])
        calls_after_ingest = (await stats(testllm))["chat_requests"]

        warm = [
            await finished(
                api, key, (await submit(api, key, question, temperature=0.7)).json()["id"]
            )
            for _ in range(2)
        ]
        calls_after_warm = (await stats(testllm))["chat_requests"]

    answers = {j["result"]["answer"] for j in jobs}
    assert calls_after_burst == 1
    assert len(answers) == 1
    assert answers.pop().startswith("According to the sources")
    assert sum(not j["result"]["cached"] for j in jobs) == 1
    deltas = "".join(data["delta"] for _, name, data in streamed if name == "answer.delta")
    assert deltas == follower["result"]["answer"]
    assert (repeat["result"]["cached"], calls_after_repeat) == (True, 1)
    assert repeat["result"]["cost_usd"] == 0.0
    assert (fresh["result"]["cached"], calls_after_ingest) == (False, 2)
    assert [w["result"]["cached"] for w in warm] == [False, False]
    assert calls_after_warm == 4


async def test_a_cache_hit_completes_the_job_at_submit(
    make_settings: MakeSettings,
    start_worker: StartWorker,
    issue_key: Callable[..., Any],
    testllm: str,
) -> None:
    """A request whose answer is cached is answered in its 202: completed, `cached: true`,
    free, never queued; a delete in the tenant invalidates it."""
    settings = llm_settings(make_settings, testllm)
    await start_worker(settings)
    key = await issue_key("acme")
    async with api_with(settings) as api:
        await ingest(api, key, ROTATION)
        first = await finished(api, key, (await submit(api, key, "What is VLT-4031?")).json()["id"])
        hit = (await submit(api, key, "What is VLT-4031?")).json()
        deleted = await api.delete("/v1/documents/key-rotation", headers=auth(key))
        after_delete = (await submit(api, key, "What is VLT-4031?")).json()
    assert first["result"]["cached"] is False
    assert hit["status"] == "completed"
    assert hit["result"]["cached"] is True
    assert hit["result"]["answer"] == first["result"]["answer"]
    assert (hit["result"]["cost_usd"], hit["result"]["usage"]["total_tokens"]) == (0.0, 0)
    assert deleted.status_code == 204
    assert after_delete["status"] == "queued"


async def test_cancelling_the_first_of_identical_requests_leaves_the_others_answered(
    make_settings: MakeSettings,
    start_worker: StartWorker,
    issue_key: Callable[..., Any],
    testllm: str,
) -> None:
    """Requests attached to a running identical one are not cancelled with it: they queue as
    jobs of their own and get answered."""
    settings = llm_settings(make_settings, testllm)
    await start_worker(settings)
    key = await issue_key("acme")
    async with api_with(settings) as api:
        await ingest(api, key, ROTATION)
        await control(testllm, hang=True)
        leader = (await submit(api, key, "How do I rotate a signing key?")).json()
        await wait_stat(testllm, "chat_in_flight", 1)
        await control(testllm, hang=False)
        followers = [
            (await submit(api, key, "How do I rotate a signing key?")).json() for _ in "ab"
        ]
        cancelled = await api.post(f"/v1/jobs/{leader['id']}/cancel", headers=auth(key))
        done = [await finished(api, key, f["id"]) for f in followers]
    assert cancelled.json()["status"] == "cancelled"
    assert [f["status"] for f in followers] == ["queued", "queued"]
    assert [d["status"] for d in done] == ["completed", "completed"]
    assert all(d["result"]["answer"].startswith("According to the sources") for d in done)


async def test_a_full_queue_sheds_with_a_retry_after_from_its_drain_rate(
    make_settings: MakeSettings,
    start_worker: StartWorker,
    issue_key: Callable[..., Any],
    testllm: str,
) -> None:
    """At the depth limit a submit is refused with 429 overloaded and nothing is queued; its
    Retry-After is the time the queue takes to drain at the rate workers took jobs over the
    last window (the cap while nothing was taken)."""
    settings = llm_settings(
        make_settings,
        testllm,
        max_queue_depth=6,
        worker_max_jobs=2,
        drain_window_s=60,
        max_retry_after_s=300,
    )
    key = await issue_key("acme")
    async with api_with(settings) as api:
        body = {"temperature": 0.5}
        queued = [(await submit(api, key, f"q{i}", **body)).json()["id"] for i in range(6)]
        idle_shed = await submit(api, key, "one too many", **body)

        await start_worker(settings)  # drains the 6 queued jobs
        for job_id in queued:
            await finished(api, key, job_id)
        await control(testllm, hang=True)
        stuck = [(await submit(api, key, f"s{i}", **body)).json()["id"] for i in range(6)]
        await wait_stat(testllm, "chat_in_flight", 2)  # 2 of them taken: 8 drained in all
        busy_shed = await submit(api, key, "one too many", **body)
        for job_id in stuck:
            await api.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key))
    assert idle_shed.status_code == 429
    assert idle_shed.json()["type"].endswith("/overloaded")
    assert idle_shed.headers["Retry-After"] == "300"
    assert busy_shed.status_code == 429
    # 6 in the queue at 8 jobs per 60 s
    assert busy_shed.headers["Retry-After"] == str(math.ceil(6 * 60 / 8))


async def test_a_concurrency_cap_is_released_when_a_job_ends(
    make_settings: MakeSettings,
    start_worker: StartWorker,
    issue_key: Callable[..., Any],
    testllm: str,
) -> None:
    """With `--max-concurrent 2`, a third unfinished job is refused with 429 rate-limited;
    cancelling or finishing one frees its place."""
    settings = llm_settings(make_settings, testllm)
    await start_worker(settings)
    key = await issue_key("acme", max_concurrent=2)
    async with api_with(settings) as api:
        await control(testllm, hang=True)
        body = {"temperature": 0.5}
        first = (await submit(api, key, "a", **body)).json()
        second = (await submit(api, key, "b", **body)).json()
        third = await submit(api, key, "c", **body)
        await api.post(f"/v1/jobs/{first['id']}/cancel", headers=auth(key))
        fourth = await submit(api, key, "d", **body)
        fifth = await submit(api, key, "e", **body)
        await control(testllm, hang=False)
        await api.post(f"/v1/jobs/{second['id']}/cancel", headers=auth(key))
        done = await finished(api, key, fourth.json()["id"])
        sixth = await submit(api, key, "f", **body)
    assert third.status_code == 429
    assert third.json()["type"].endswith("/rate-limited")
    assert "Retry-After" in third.headers
    assert fourth.status_code == 202
    assert fifth.status_code == 429
    assert done["status"] == "completed"
    assert sixth.status_code == 202


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
