"""Redis goes away under a running stack: a Redis of the test's own is shut down and
SIGKILLed while real `ragq serve` / `ragq worker` processes run, and the same worker
process answers again once it is back; a worker that dies, or whose loop ends for another
reason, stops counting as ready at once and exits non-zero."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from redis.asyncio import Redis

from scripts.harness import POLL_S
from scripts.harness.redisproc import OwnRedis
from tests.e2e.conftest import Stack, auth
from tests.e2e.test_stack import DOC

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]
READY_TIMEOUT_S = 90.0


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    """A running Redis of the test's own, stopped at the end."""
    server = OwnRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.returncode is None:
            await server.kill()


def on_redis(stack: Stack, redis: OwnRedis) -> Stack:
    """The stack, pointed at the test's own Redis."""
    stack.env["RAGQ_REDIS_URL"] = redis.url
    return stack


async def ready(client: httpx.AsyncClient) -> dict[str, Any]:
    """/readyz once it says ready (polled: readiness changes in other processes)."""
    async with asyncio.timeout(READY_TIMEOUT_S):
        while True:
            with contextlib.suppress(httpx.TransportError):
                response = await client.get("/readyz")
                if response.status_code == 200:
                    return dict(response.json())
            await asyncio.sleep(POLL_S)


async def not_ready(client: httpx.AsyncClient) -> dict[str, Any]:
    """/readyz once it says not ready."""
    async with asyncio.timeout(READY_TIMEOUT_S):
        while (response := await client.get("/readyz")).status_code != 503:
            await asyncio.sleep(POLL_S)
    return dict(response.json())


async def answered_or_exited(
    stack: Stack, client: httpx.AsyncClient, job_id: str
) -> dict[str, Any] | int:
    """The job once terminal, or the worker's exit code if the worker ends first."""

    async def terminal() -> dict[str, Any]:
        while True:
            job = (await client.get(f"/v1/jobs/{job_id}?wait=10")).json()
            if job["status"] in {"completed", "failed", "cancelled"}:
                return dict(job)

    polling = asyncio.create_task(terminal())
    exiting = asyncio.create_task(stack.procs["worker"].wait())
    done, _ = await asyncio.wait({polling, exiting}, return_when=asyncio.FIRST_COMPLETED)
    for task in (polling, exiting):
        task.cancel()
    await asyncio.gather(polling, exiting, return_exceptions=True)
    return exiting.result() if exiting in done else polling.result()


async def submit(client: httpx.AsyncClient, question: str) -> str:
    response = await client.post("/v1/jobs", json={"question": question})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def until_first_delta(client: httpx.AsyncClient, job_id: str) -> None:
    async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        async for event in source.aiter_sse():
            if event.event == "answer.delta":
                return


async def events_of(client: httpx.AsyncClient, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        async for event in source.aiter_sse():
            out.append((event.event, json.loads(event.data)))
    return out


def log_events(stack: Stack, name: str) -> list[dict[str, Any]]:
    """The JSON lines of a process's log."""
    lines = (stack.logs / f"{name}.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def outage(
    stack: Stack, client: httpx.AsyncClient, stop: Callable[[], Awaitable[None]], redis: OwnRedis
) -> None:
    """Stop Redis with `stop`, keep it away until the worker's loop has met the outage (a
    restart quicker than that is absorbed by the clients' own retries and tests nothing)
    or the worker has exited, then start it again and wait until ragq is ready."""

    def noticed() -> int:
        return sum(e["event"] == "worker.redis_unavailable" for e in log_events(stack, "worker"))

    before = noticed()
    await stop()
    async with asyncio.timeout(READY_TIMEOUT_S):
        # the log is another process's: polled
        while stack.procs["worker"].returncode is None and noticed() == before:
            await asyncio.sleep(POLL_S)
    await redis.start()
    await ready(client)


@pytest.mark.timeout(300)  # five phases of real processes; a hang still fails it
async def test_the_worker_rides_out_a_redis_shutdown_and_a_redis_kill(
    stack: Stack, own_redis: OwnRedis
) -> None:
    """Redis shut down mid-answer, then SIGKILLed: the one worker process lives through
    both, answers a job submitted after each return, and the job it was streaming when
    Redis went away completes once Redis is back, its deltas still the answer."""
    stack = on_redis(stack, own_redis)
    await stack.start_llm("--token-latency-ms", "50")  # Redis goes away mid-answer
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    await stack.index(key, DOC)
    async with httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60) as client:
        streaming = await submit(client, "How do I rotate a signing key?")
        await until_first_delta(client, streaming)
        await outage(stack, client, own_redis.shutdown, own_redis)
        after_shutdown = await answered_or_exited(
            stack, client, await submit(client, "What does VLT-4031 mean?")
        )
        interrupted = await answered_or_exited(stack, client, streaming)
        replayed = await events_of(client, streaming)

        await outage(stack, client, own_redis.kill, own_redis)
        after_kill = await answered_or_exited(
            stack, client, await submit(client, "How long is the overlap window?")
        )
    worker_alive = stack.procs["worker"].returncode is None
    deltas = "".join(d["delta"] for name, d in replayed if name == "answer.delta")
    names = [name for name, _ in replayed]
    assert worker_alive, stack.log_tails()
    assert isinstance(after_shutdown, dict), stack.log_tails()
    assert isinstance(interrupted, dict), stack.log_tails()
    assert isinstance(after_kill, dict), stack.log_tails()
    assert [after_shutdown["status"], interrupted["status"], after_kill["status"]] == [
        "completed"
    ] * 3
    assert (deltas, names.count("answer.completed")) == (interrupted["result"]["answer"], 1)
    logged = [line["event"] for line in log_events(stack, "worker")]
    assert "job.interrupted" in logged


async def test_a_dead_worker_stops_counting_as_ready_at_once(stack: Stack) -> None:
    """SIGKILL of the only worker: /readyz turns 503 well before its last heartbeat ages
    out (beats every 60 s here, counted for three), because its Redis connection is gone."""
    stack.env["RAGQ_HEARTBEAT_S"] = "60"
    await stack.start_worker()
    await stack.start_api()
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        before = await ready(client)
        stack.procs["worker"].send_signal(signal.SIGKILL)
        await stack.procs["worker"].wait()
        after = await not_ready(client)
    assert (before["checks"]["workers"], after["checks"]["workers"]) == (1, 0)


async def test_a_worker_whose_loop_fails_exits_non_zero_and_says_why(
    stack: Stack, redis: Redis
) -> None:
    """An error that is not Redis being away (here the queue key holds the wrong type)
    ends the worker with exit code 1 and an error line naming the queue and the error,
    not a quiet exit 0 that a supervisor would leave down."""
    await stack.start_worker()
    await stack.start_api()  # ready: the worker's loops run
    await redis.set("ragqtest:queue:interactive", "not a sorted set")
    code = await stack.procs["worker"].wait()
    crashed = [e for e in log_events(stack, "worker") if e["event"] == "worker.crashed"]
    assert code == 1, stack.log_tails()
    assert [(e["level"], e["queue"]) for e in crashed] == [("error", "ragqtest:queue:interactive")]
    assert "WRONGTYPE" in crashed[0]["error"]
