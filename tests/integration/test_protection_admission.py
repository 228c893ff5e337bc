"""Admission on real Redis with the test LLM: a full queue sheds with a Retry-After from its
drain rate, so does one whose estimated wait is too long, and a per-key concurrency cap is
released when a job ends."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from shared.config import Settings
from shared.heartbeat import WorkerHeartbeat
from shared.redis_keys import DRAIN_BUCKET_S, Keys
from tests.conftest import MakeSettings, api_with
from tests.integration.conftest import auth, finished
from tests.integration.protection import llm_settings, submit, wait_stat
from tests.integration.test_llm_path import control

pytestmark = pytest.mark.integration
StartWorker = Callable[[Settings], Awaitable[None]]
# seconds; an hour, so the jobs drained early in the test are still in the window however
# slowly the machine runs the rest of it; the cap stays above the rate-derived Retry-After
WINDOW_S = 3600
CAP_S = 10_000


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
        max_queue_wait_s=0,  # depth alone decides here
        worker_max_jobs=2,
        drain_window_s=WINDOW_S,
        max_retry_after_s=CAP_S,
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
    assert idle_shed.headers["Retry-After"] == str(CAP_S)
    assert busy_shed.status_code == 429
    # 6 in the queue at 8 jobs per window
    assert busy_shed.headers["Retry-After"] == str(math.ceil(6 * WINDOW_S / 8))


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


async def test_a_queue_whose_estimated_wait_is_too_long_sheds(
    make_settings: MakeSettings, issue_key: Callable[..., Any], redis: Redis, keys: Keys
) -> None:
    """With `RAGQ_MAX_QUEUE_WAIT_S=5` and workers that took 10 jobs in 5 busy seconds of the
    window (2 jobs/s), a job queued behind 10 others would start in 5 s and is admitted; one
    behind 11 would wait 5.5 s and is refused with 429 overloaded, saying why, and a
    Retry-After of the excess. The other queue, with nothing ahead, still admits."""
    settings = make_settings(max_queue_wait_s=5, max_queue_depth=1000, drain_window_s=60)
    # a bucket two back from now: full, within the window however slowly the test runs
    await redis.set(keys.drain_bucket("interactive", time.time() - 2 * DRAIN_BUCKET_S), 10)
    key = await issue_key("acme")
    async with api_with(settings) as api:
        admitted = [(await submit(api, key, f"q{i}", temperature=0.5)) for i in range(11)]
        shed = await submit(api, key, "one too many", temperature=0.5)
        other = await submit(api, key, "batch", temperature=0.5, priority="batch")
    assert [r.status_code for r in admitted] == [202] * 11
    assert shed.status_code == 429
    assert shed.json()["type"].endswith("/overloaded")
    assert "longer than 5 s to start (RAGQ_MAX_QUEUE_WAIT_S" in shed.json()["detail"]
    assert shed.headers["Retry-After"] == "1"
    assert other.status_code == 202


async def test_the_wait_counts_jobs_beyond_the_live_slots_and_stays_under_half_a_job(
    make_settings: MakeSettings, issue_key: Callable[..., Any], redis: Redis, keys: Keys
) -> None:
    """A live worker with 4 slots on the queue: the 4 jobs it runs wait for nothing. With
    10 jobs taken in 5 busy seconds (2 jobs/s), a job takes 4 / 2 = 2 s, so
    `RAGQ_MAX_QUEUE_WAIT_RATIO=0.5` limits the estimated wait to 1 s, below
    `RAGQ_MAX_QUEUE_WAIT_S=5`: a job behind 6 (2 beyond the slots, 1 s) is admitted, one
    behind 7 (1.5 s) is refused, naming the 1 s. A dead worker's stale beat adds no slots."""
    settings = make_settings(
        max_queue_wait_s=5, max_queue_wait_ratio=0.5, max_queue_depth=1000, heartbeat_s=60
    )
    await redis.set(keys.drain_bucket("interactive", time.time() - 2 * DRAIN_BUCKET_S), 10)
    live = WorkerHeartbeat(ts=time.time(), queues=["interactive", "batch"], slots=4)
    dead = WorkerHeartbeat(ts=time.time() - 3600, queues=["interactive"], slots=100)
    await redis.hset(  # type: ignore[misc]
        keys.workers, mapping={"w-live": live.model_dump_json(), "w-dead": dead.model_dump_json()}
    )
    key = await issue_key("acme")
    async with api_with(settings) as api:
        admitted = [(await submit(api, key, f"q{i}", temperature=0.5)) for i in range(7)]
        shed = await submit(api, key, "one too many", temperature=0.5)
    assert [r.status_code for r in admitted] == [202] * 7
    assert shed.status_code == 429
    assert "longer than 1 s to start" in shed.json()["detail"]
    assert shed.headers["Retry-After"] == "1"
