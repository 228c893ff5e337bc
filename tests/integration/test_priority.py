"""Priority queues under load: a flood of batch jobs does not hold back interactive jobs.

Durations are left to `scripts/bench/priority.py`; these tests assert the order of events
a user would notice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from shared.config import Settings
from tests.integration.conftest import auth, finished, ingest

pytestmark = pytest.mark.integration
MakeSettings = Callable[..., Settings]
StartWorker = Callable[[Settings], Awaitable[None]]

ROTATION: dict[str, Any] = {
    "id": "key-rotation",
    "title": "Rotating signing keys",
    "text": (
        "# Rotating signing keys\n\nRotate a signing key with `vault keys rotate`.\n\n"
        "## Errors\n\nA pinned consumer makes the rotation fail with VLT-4031. Unpin it first.\n"
    ),
}

FLOOD = 500  # batch jobs, as in the acceptance criterion of issue #4
CHUNK = 50  # batch jobs submitted at once
SLOTS = 4  # per queue, so slots (not the LLM or the CPU) are what the two queues compete for
INTERACTIVE = SLOTS
SENTINEL = 100  # the flood's 101st job: FIFO, so it ends only after ~100 batch jobs have
MIN_UNFINISHED = FLOOD - SENTINEL


async def _submit(api: httpx.AsyncClient, key: str, question: str, priority: str) -> dict[str, Any]:
    response = await api.post(
        "/v1/jobs", json={"question": question, "priority": priority}, headers=auth(key)
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


async def _statuses(api: httpx.AsyncClient, key: str, job_ids: list[str]) -> Counter[str]:
    """How many of the jobs are in each status, read through the API."""
    counts: Counter[str] = Counter()
    for start in range(0, len(job_ids), CHUNK):
        jobs = await asyncio.gather(
            *(api.get(f"/v1/jobs/{j}", headers=auth(key)) for j in job_ids[start : start + CHUNK])
        )
        assert {job.status_code for job in jobs} == {200}
        counts.update(job.json()["status"] for job in jobs)
    return counts


async def test_batch_flood_does_not_hold_back_interactive_jobs(
    api: httpx.AsyncClient,
    issue_key: Callable[..., Any],
    make_settings: MakeSettings,
    testllm: str,
    start_worker: StartWorker,
) -> None:
    """Interactive jobs submitted behind 500 queued batch jobs complete while at least 400
    of those are still unfinished, and before the flood's 101st job does."""
    async with httpx.AsyncClient() as llm:
        # ~1 s per answer: the batch queue drains a few jobs per second at most
        (await llm.post(f"{testllm}/_control", json={"token_latency_ms": 50})).raise_for_status()
        await start_worker(make_settings(llm_base_url=f"{testllm}/v1", worker_max_jobs=SLOTS))
        key = await issue_key("acme", rpm=100_000)  # ~1,000 requests: no rate limit in the way
        await ingest(api, key, ROTATION)  # indexing runs on the batch queue: before the flood
        batch: list[str] = []
        for start in range(0, FLOOD, CHUNK):
            jobs = await asyncio.gather(
                *(
                    _submit(api, key, f"What is VLT-4031? (batch {i})", "batch")
                    for i in range(start, start + CHUNK)
                )
            )
            batch += [job["id"] for job in jobs]
        # every batch slot is busy (the LLM answers that many streams) before interactive jobs come
        busy = await llm.get(
            f"{testllm}/_stats", params={"wait": "chat_in_flight", "min": SLOTS, "timeout": 60}
        )
        submitted = await asyncio.gather(
            *(
                _submit(api, key, f"What is VLT-4031? (interactive {i})", "interactive")
                for i in range(INTERACTIVE)
            )
        )
        interactive = asyncio.ensure_future(
            asyncio.gather(*(finished(api, key, job["id"]) for job in submitted))
        )
        sentinel = asyncio.ensure_future(finished(api, key, batch[SENTINEL]))
        # whichever ends first: without separate queues it is the batch job, and fast
        await asyncio.wait([interactive, sentinel], return_when=asyncio.FIRST_COMPLETED)
        first = "interactive jobs" if interactive.done() else f"batch job #{SENTINEL}"
        for task in (interactive, sentinel):
            task.cancel()  # no-op for a finished task
        await asyncio.gather(interactive, sentinel, return_exceptions=True)
        done = interactive.result() if first == "interactive jobs" else []
        flood = await _statuses(api, key, batch)
    results = [job["result"] for job in done]
    assert busy.status_code == 200, busy.text
    assert first == "interactive jobs"
    assert [job["status"] for job in done] == ["completed"] * INTERACTIVE
    assert [r["degraded"] for r in results] == [False] * INTERACTIVE
    assert all(r["answer"].startswith("According to the sources, ") for r in results)
    assert set(flood) <= {"queued", "in_progress", "completed"}
    assert flood["queued"] + flood["in_progress"] >= MIN_UNFINISHED, flood
