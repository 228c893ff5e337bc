"""Event streams against a real `ragq serve` on the suite's own Redis: a stream ends right
after its job's terminal event (read whole, resumed at, past or before the end, and
`POST /v1/rag` / chat completions streaming an answer already cached), and hundreds of idle
streams hold one Redis connection each while they wait, all given back when they close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from scripts.harness import wait_until
from scripts.harness.processes import free_port
from scripts.harness.redisproc import OwnRedis
from tests.e2e.conftest import TERMINAL, Stack, auth, finished
from tests.faults.conftest import Figures

GUARD_S = 60.0  # a hang guard, not a measure: a stream that ends does so at once
TERMINAL_EVENTS = frozenset(f"job.{status}" for status in TERMINAL)
DOC = {
    "id": "key-rotation",
    "title": "Rotating signing keys",
    "text": "Rotate a signing key with vault keys rotate; keep both keys valid for 72 hours.",
}


@dataclass
class Stream:
    """What one event stream sent: its status, its events (id, name) in order, and whether
    it ended (the server closed it) and sent nothing after its terminal event."""

    status: int = 0
    events: list[tuple[str, str]] = field(default_factory=list)
    ended: bool = False
    after_terminal: list[str] = field(default_factory=list)


async def read_stream(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> Stream:
    """Read an event stream to its end, or give up at the hang guard (`ended` false)."""
    seen = Stream()
    event_id = name = ""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(GUARD_S), client.stream(method, url, **kw) as response:
            seen.status = response.status_code
            async for line in response.aiter_lines():
                done = seen.events and (
                    seen.events[-1][1] in TERMINAL_EVENTS or seen.events[-1][1] == "[DONE]"
                )
                if done and line:
                    seen.after_terminal.append(line)
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line == "data: [DONE]":
                    name = "[DONE]"
                elif line == "" and name:
                    seen.events.append((event_id, name))
                    event_id = name = ""
            seen.ended = True
    return seen


async def test_streams_end_right_after_the_terminal_event(
    fault_stack: Stack, figures: Figures
) -> None:
    """Over a batch of finished jobs, every stream (whole, resumed at, past or before the
    terminal event, by `Last-Event-ID` or `?starting_after`) and every streamed answer of
    a cached question closes right after the terminal event, or at once when nothing is
    left: none is left open."""
    await fault_stack.start_llm()
    await fault_stack.start_worker()
    await fault_stack.start_api()
    key = await fault_stack.create_key("acme")
    await fault_stack.index(key, DOC)
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        base_url=fault_stack.url, headers=auth(key), timeout=GUARD_S, limits=limits
    ) as client:
        questions = [f"How long do both keys stay valid, case {n}?" for n in range(12)]
        submitted = [
            (await client.post("/v1/jobs", json={"question": q})).json() for q in questions
        ]
        jobs = [await finished(client, job["id"]) for job in submitted]
        whole = await asyncio.gather(
            *(read_stream(client, "GET", f"/v1/jobs/{job['id']}/events") for job in jobs)
        )
        resumes: dict[str, Callable[[int], dict[str, Any]]] = {
            "at the end": lambda last: {"headers": {"Last-Event-ID": str(last)}},
            "past the end": lambda last: {"headers": {"Last-Event-ID": str(last + 1)}},
            "at 2**64 - 1": lambda last: {"headers": {"Last-Event-ID": str(2**64 - 1)}},
            "?starting_after the end": lambda last: {"params": {"starting_after": last}},
            "?starting_after past it": lambda last: {"params": {"starting_after": last + 1000}},
            "before the end": lambda last: {"headers": {"Last-Event-ID": str(last - 1)}},
        }
        resumed = {
            (how, job["id"]): await read_stream(
                client, "GET", f"/v1/jobs/{job['id']}/events", **make(int(stream.events[-1][0]))
            )
            for job, stream in zip(jobs, whole, strict=True)
            for how, make in resumes.items()
        }
        cached = await asyncio.gather(
            *(
                read_stream(client, "POST", "/v1/rag", json={"question": q, "stream": True})
                for q in questions
            ),
            *(
                read_stream(
                    client,
                    "POST",
                    "/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": q}], "stream": True},
                )
                for q in questions
            ),
        )
    streams = [*whole, *resumed.values(), *cached]
    left_open = [s for s in streams if not s.ended or s.after_terminal]
    figures(
        "streams that end",
        jobs=len(jobs),
        streams=len(streams),
        left_open=len(left_open),
        resumes_at_or_past_the_end=sum(1 for (how, _) in resumed if how != "before the end"),
        cached_answers_streamed=len(cached),
    )
    assert [job["status"] for job in jobs] == ["completed"] * len(jobs)
    assert left_open == []
    assert {s.status for s in streams} == {200}
    assert all(s.events[-1][1] == "job.completed" for s in whole)
    assert all(s.events[0] == ("1", "job.queued") for s in whole)
    for (how, job_id), stream in resumed.items():
        last = next(w for j, w in zip(jobs, whole, strict=True) if j["id"] == job_id).events[-1]
        expected = [last] if how == "before the end" else []
        assert (how, stream.events) == (how, expected)
    ends = [s.events[-1][1] for s in cached]
    assert ends == ["job.completed"] * len(questions) + ["[DONE]"] * len(questions)


STREAMS_PER_JOB = 16
JOBS = 20  # queued, with no worker to take them: their streams wait
STREAMS = JOBS * STREAMS_PER_JOB
POOL_LIMIT = 1000  # RAGQ_REDIS_MAX_CONNECTIONS: per pool, and the API has two


async def redis_clients(redis: Redis) -> tuple[int, int]:
    """Connections to the Redis server (other than this one), and how many of them are
    blocked in XREAD (an SSE stream waiting for its job's next event)."""
    mine = await redis.client_id()
    clients = [c for c in await redis.client_list() if int(c["id"]) != mine]
    blocked = sum(1 for c in clients if c.get("cmd") == "xread" and "b" in c.get("flags", ""))
    return len(clients), blocked


async def counted_once(
    redis: Redis, done: Callable[[int, int], bool], failure: str
) -> tuple[int, int]:
    """The connection counts once `done(total, blocked)` holds (another process's state:
    polled, bounded by the hang guard)."""
    counts = (0, 0)

    async def holds() -> bool:
        nonlocal counts
        counts = await redis_clients(redis)
        return done(*counts)

    await wait_until(holds, timeout_s=GUARD_S, failure=lambda: f"{failure}: {counts}")
    return counts


async def serving(stack: Stack) -> str:
    """Start `ragq serve` with no worker (so not ready, but serving) and return its URL."""
    url = f"http://127.0.0.1:{free_port()}"
    await stack.spawn("api", "serve", "--port", url.rsplit(":", 1)[1])
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:

        async def alive() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return (await client.get("/healthz")).status_code == 200
            return False

        await wait_until(alive, timeout_s=GUARD_S, failure="the API did not start", processes=stack)
    return url


@pytest.mark.timeout(300)
async def test_idle_streams_hold_one_redis_connection_each_and_give_it_back(
    fault_stack: Stack, own_redis: OwnRedis, figures: Figures
) -> None:
    """320 idle event streams of queued jobs hold one blocked Redis connection each (and at
    most one more each from the API's ordinary pool) while the API keeps answering; when
    their clients leave, every one of those connections is closed."""
    fault_stack.url = await serving(fault_stack)  # no worker: only the API uses Redis
    key = await fault_stack.create_key("acme")
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    limits = httpx.Limits(max_connections=STREAMS + 16)
    async with httpx.AsyncClient(
        base_url=fault_stack.url, headers=auth(key), timeout=GUARD_S, limits=limits
    ) as client:
        questions = [f"Which signing key is current, {n}?" for n in range(JOBS)]
        jobs = [
            (await client.post("/v1/jobs", json={"question": q})).json()["id"] for q in questions
        ]
        before = await redis_clients(redis)

        async def hold(job_id: str) -> None:
            async with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
                async for _ in response.aiter_lines():
                    pass

        holders = [asyncio.create_task(hold(jobs[n % JOBS])) for n in range(STREAMS)]
        held = await counted_once(
            redis, lambda _, blocked: blocked >= STREAMS, "the streams did not all wait"
        )
        answers = [
            (await client.get(f"/v1/jobs/{jobs[0]}")).json()["status"],
            (await client.get("/v1/usage")).status_code,
        ]
        for task in holders:
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        after = await counted_once(
            redis,
            lambda total, blocked: blocked == 0 and total <= held[0] - STREAMS,
            "the streams' connections were not closed",
        )
    await redis.aclose()
    figures(
        "idle streams",
        streams=STREAMS,
        jobs=JOBS,
        redis_connections_before=before[0],
        redis_connections_held=held[0],
        blocked_xreads_held=held[1],
        redis_connections_after=after[0],
        blocked_xreads_after=after[1],
        api_pool_idle_after=after[0] - before[0],
        api_pool_limit=POOL_LIMIT,
        api_pools=2,
    )
    assert answers == ["queued", 200]
    assert held[1] == STREAMS
    assert held[0] - before[0] <= 2 * STREAMS  # one blocked, at most one ordinary, per stream
    assert after[1] == 0
