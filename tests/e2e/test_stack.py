"""Real processes over HTTP: SSE resume across reconnects, cancel of a streaming answer,
a worker SIGKILLed mid-job, and the SSE reader letting go of Redis when a client leaves."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from redis.asyncio import Redis

from tests.e2e.conftest import Stack, auth, finished

pytestmark = pytest.mark.e2e

DOC = {
    "id": "key-rotation",
    "title": "Rotating signing keys",
    "text": (
        "# Rotating signing keys\n\n"
        "Rotate a signing key with vault keys rotate and keep both keys valid during the "
        "overlap window, which defaults to seventy two hours for every service in the fleet. "
        "More text follows here.\n\n## Errors\n\n"
        "A pinned consumer makes the rotation fail with error VLT-4031 until it is unpinned by "
        "its owning team through the consumers command of the vault tool. Then retry.\n"
    ),
}


async def _running_stack(stack: Stack, *llm_flags: str) -> tuple[httpx.AsyncClient, str]:
    await stack.start_llm(*llm_flags)
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    await stack.index(key, DOC)
    return httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60), key


async def _submit_until_first_delta(client: httpx.AsyncClient) -> str:
    """Submit a question and return its job id once the answer has started streaming."""
    job_id = str((await client.post("/v1/jobs", json={"question": "How to rotate?"})).json()["id"])
    async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        async for e in source.aiter_sse():
            if e.event == "answer.delta":
                break
    return job_id


async def _events(client: httpx.AsyncClient, job_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    out = []
    async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        async for e in source.aiter_sse():
            out.append((int(e.id), e.event, json.loads(e.data)))
    return out


async def test_sse_resume_across_many_reconnects(stack: Stack) -> None:
    """A client that drops the stream every few events and resumes (alternating
    Last-Event-ID and ?starting_after) gets every event once, in order, and its deltas
    rebuild exactly the final answer."""
    client, _ = await _running_stack(stack, "--token-latency-ms", "60")
    async with client:
        job_id = (await client.post("/v1/jobs", json={"question": "How to rotate?"})).json()["id"]
        seen: list[tuple[int, str, dict[str, Any]]] = []
        reconnects = 0
        while not seen or seen[-1][1] not in {"job.completed", "job.failed", "job.cancelled"}:
            last = seen[-1][0] if seen else 0
            use_header = reconnects % 2 == 0
            headers = {"Last-Event-ID": str(last)} if use_header and last else {}
            params = {} if use_header or not last else {"starting_after": last}
            async with aconnect_sse(
                client, "GET", f"/v1/jobs/{job_id}/events", headers=headers, params=params
            ) as source:
                taken = 0
                async for e in source.aiter_sse():
                    seen.append((int(e.id), e.event, json.loads(e.data)))
                    taken += 1
                    if taken == 3:
                        break  # drop the connection mid-answer
            reconnects += 1
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
    answer = "".join(d["delta"] for _, name, d in seen if name == "answer.delta")
    assert reconnects >= 5, stack.log_tails()
    assert [s[0] for s in seen] == list(range(1, len(seen) + 1))
    assert answer == job["result"]["answer"]
    assert job["result"]["degraded"] is False


async def test_cancel_stops_a_streaming_answer(stack: Stack) -> None:
    """Cancelling a job mid-answer stops the LLM stream (its connection is closed within
    a few tokens: at 5 s per token, a cancel that did not stop it would let more through),
    records `cancelled`, and the event stream ends with job.cancelled and no delta after it."""
    client, _ = await _running_stack(stack, "--token-latency-ms", "5000")
    async with client:
        job_id = await _submit_until_first_delta(client)
        sent_at_cancel = (await stack.llm_stats())["tokens_sent"]
        cancelled = await client.post(f"/v1/jobs/{job_id}/cancel")
        after = await stack.llm_stats(wait="streams_disconnected", min=1, timeout=60)
        events = await _events(client, job_id)
    names = [name for _, name, _ in events]
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert after["streams_completed"] == 0
    assert after["tokens_sent"] - sent_at_cancel <= 4, stack.log_tails()
    assert names[-1] == "job.cancelled"
    assert "answer.completed" not in names


async def test_killed_worker_job_completes_on_a_new_worker(stack: Stack) -> None:
    """SIGKILL of the worker mid-answer: once a new worker starts, the job completes
    (after the lock lapses), and the replayed deltas still equal the final answer."""
    client, _ = await _running_stack(stack, "--token-latency-ms", "100")
    async with client:
        job_id = await _submit_until_first_delta(client)
        stack.procs["worker"].send_signal(signal.SIGKILL)
        await stack.procs["worker"].wait()
        await stack.start_worker("worker2")
        job = await finished(client, job_id)
        events = await _events(client, job_id)
    answer = "".join(d["delta"] for _, name, d in events if name == "answer.delta")
    assert job["status"] == "completed", stack.log_tails()
    assert job["result"]["degraded"] is False
    assert answer == job["result"]["answer"]
    assert [e[0] for e in events] == list(range(1, len(events) + 1))


async def test_sse_client_leaving_frees_its_redis_connection(stack: Stack, redis: Redis) -> None:
    """When a client drops a live stream, the API's blocked XREAD ends and Redis no longer
    holds a connection blocked for it."""
    client, _ = await _running_stack(stack, "--token-latency-ms", "2000")

    async def blocked_readers() -> int:
        clients = await redis.client_list()
        return sum(1 for c in clients if c.get("cmd") == "xread" and c.get("flags") == "b")

    async def until_blocked_readers(n: int) -> int:
        async with asyncio.timeout(30):
            while (found := await blocked_readers()) != n:
                await asyncio.sleep(0.05)
        return found

    async with client:
        job_id = (await client.post("/v1/jobs", json={"question": "How to rotate?"})).json()["id"]
        async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
            async for e in source.aiter_sse():
                if e.event == "answer.delta":
                    during = await until_blocked_readers(1)  # connection still open here
                    break  # leaving the loop closes the response
        after = await until_blocked_readers(0)
        await client.post(f"/v1/jobs/{job_id}/cancel")
    assert (during, after) == (1, 0)


async def test_request_id_follows_the_job_into_the_worker_logs(stack: Stack) -> None:
    """The X-Request-ID of a submit appears, with the job id and tenant, in the worker's
    JSON log lines for that job."""
    client, _ = await _running_stack(stack)
    async with client:
        submitted = await client.post(
            "/v1/jobs", json={"question": "How to rotate?"}, headers={"X-Request-ID": "trace-77"}
        )
        job_id = submitted.json()["id"]
        await finished(client, job_id)
    await stack.stop()  # flush the worker's log
    lines = [json.loads(line) for line in (stack.logs / "worker.log").read_text().splitlines()]
    mine = [line for line in lines if line.get("job_id") == job_id]
    assert submitted.headers["x-request-id"] == "trace-77"
    assert {line["event"] for line in mine} >= {"job.started", "job.completed"}
    assert all(line["request_id"] == "trace-77" for line in mine)
    assert all(line["tenant"] == "acme" for line in mine)
