"""The answer cache and coalescing on real Redis with the test LLM: identical requests share
one LLM call until the corpus changes, a cache hit completes the job at submit, and
cancelling the first of identical requests leaves the others answered."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shared.config import Settings
from tests.conftest import MakeSettings, api_with
from tests.integration.conftest import auth, finished, ingest, sse_events
from tests.integration.protection import llm_settings, submit, wait_stat
from tests.integration.test_job_path import ROTATION
from tests.integration.test_llm_path import control, stats

pytestmark = pytest.mark.integration
StartWorker = Callable[[Settings], Awaitable[None]]


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
