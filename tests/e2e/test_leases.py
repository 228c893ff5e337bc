"""Real processes: a key's concurrency cap does not leak when a worker is SIGKILLed mid-job."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.e2e.conftest import Stack, auth, finished
from tests.e2e.test_stack import DOC

pytestmark = pytest.mark.e2e
# seconds: a running job's lease lives one lock TTL past its worker's last renewal (every
# third of it), so the cap holds for at least 6 s after the SIGKILL: wide enough for the
# next submit to come within it on a loaded machine
LOCK_TTL_S = 9
LAPSE_DEADLINE_S = 60.0  # the lease lapses one lock TTL after its worker died: fail long after


async def _in_progress(client: httpx.AsyncClient, question: str) -> str:
    """Submit a question; return its job id once the answer has started streaming."""
    response = await client.post("/v1/jobs", json={"question": question, "temperature": 0.5})
    assert response.status_code == 202, response.text
    job_id = str(response.json()["id"])
    async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        async for event in source.aiter_sse():
            if event.event == "answer.delta":
                break
    return job_id


async def test_a_killed_workers_job_gives_its_concurrency_lease_back(stack: Stack) -> None:
    """`--max-concurrent 1`: while the job of a SIGKILLed worker may still be alive, the cap
    holds; its lease then lapses by itself (no worker alive to renew it), the key may submit
    again, and once a new worker finishes both jobs the key has no lease left."""
    stack.env["RAGQ_LOCK_TTL_S"] = str(LOCK_TTL_S)
    await stack.start_llm("--token-latency-ms", "100")
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme", "--max-concurrent", "1")
    await stack.index(key, DOC)
    async with httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60) as client:
        first = await _in_progress(client, "How do I rotate a signing key?")
        stack.procs["worker"].send_signal(signal.SIGKILL)
        await stack.procs["worker"].wait()
        body = {"question": "What is VLT-4031?", "temperature": 0.5}
        held = await client.post("/v1/jobs", json=body)

        # across the process boundary there is no event for a lapse: poll, bounded
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LAPSE_DEADLINE_S
        while (second := await client.post("/v1/jobs", json=body)).status_code == 429:
            assert loop.time() < deadline, "the dead worker's lease never lapsed"
            await asyncio.sleep(0.2)

        await stack.start_worker("worker2")
        done = [await finished(client, job_id) for job_id in (first, second.json()["id"])]
        third = await client.post("/v1/jobs", json=body)
    assert held.status_code == 429
    assert held.json()["type"].endswith("/rate-limited")
    assert second.status_code == 202
    assert [job["status"] for job in done] == ["completed", "completed"], stack.log_tails()
    assert third.status_code == 202
