"""Integration fixtures: an in-process worker on the real Redis, the test LLM server,
and helpers to ingest documents and follow jobs through the public API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest
from redis.asyncio import Redis

from scripts.testllm import Behaviour, serve_testllm
from shared.config import Settings
from shared.redis_keys import QUEUES, Keys
from tests.integration.breakers import second_redis_fixture  # noqa: F401 - a fixture
from tests.integration.chunkstores import (  # noqa: F401 - fixtures, kept beside their helpers
    embedder_fixture,
    open_store_fixture,
    store_settings_fixture,
)
from workers.rag.llm import LLMClient


@pytest.fixture
async def testllm() -> AsyncIterator[str]:
    """The project's OpenAI-compatible test server; yields its base URL (no /v1)."""
    async with serve_testllm(Behaviour()) as url:
        yield url


@pytest.fixture
async def llm_api(testllm: str) -> AsyncIterator[openai.AsyncOpenAI]:
    """An openai client of the test LLM that validates every reply strictly."""
    client = openai.AsyncOpenAI(
        base_url=f"{testllm}/v1", api_key="x", max_retries=0, _strict_response_validation=True
    )
    yield client
    await client.close()


@pytest.fixture
async def llm_http(testllm: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client of the test LLM, for its control endpoints and raw replies."""
    async with httpx.AsyncClient(base_url=testllm, timeout=30) as client:
        yield client


MakeLLM = Callable[..., LLMClient]


@pytest.fixture
async def make_llm(redis: Redis, keys: Keys) -> AsyncIterator[MakeLLM]:
    """Build LLM clients (on the test Redis unless told otherwise); closed at teardown."""
    clients: list[LLMClient] = []

    def make(settings: Settings, **kwargs: Any) -> LLMClient:
        kwargs.setdefault("redis", redis)
        client = LLMClient(settings, keys=keys, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def start_worker(
    redis: Redis, keys: Keys
) -> AsyncIterator[Callable[[Settings], Awaitable[None]]]:
    """Start an in-process worker (both queues) with the given settings; stopped at teardown."""
    from workers.main import serve

    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(settings: Settings) -> None:
        stop, started = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve(settings, QUEUES, stop=stop, started=started))
        stops.append((stop, task))
        waiter = asyncio.create_task(started.wait())
        done, _ = await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiter.cancel()
            task.result()  # raises the start-up error

    yield start
    for stop, _task in stops:
        stop.set()
    for _stop, task in stops:
        await _stopped(task)


async def _stopped(task: asyncio.Task[None]) -> None:
    """Wait for a worker to stop; if it does not within a minute, fail with every task's stack
    (pytest-timeout would show only the threads, which tells nothing about a stuck coroutine)."""
    done, _ = await asyncio.wait([task], timeout=60)
    if done:
        task.result()
        return
    for other in asyncio.all_tasks():
        print(f"--- {other!r}")  # noqa: T201 - diagnostics of a hung teardown
        awaited: Any = other.get_coro()
        while awaited is not None:  # the whole chain of awaits, not only the outer frame
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            if frame is not None:
                print(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")  # noqa: T201
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
    pytest.fail("the in-process worker did not stop within 60 s (task stacks above)")


Answering = Callable[[Settings], Awaitable[str]]


@pytest.fixture
def answering(
    api: httpx.AsyncClient,
    issue_key: Callable[..., Awaitable[str]],
    start_worker: Callable[[Settings], Awaitable[None]],
) -> Answering:
    """`await answering(settings)`: a worker with these settings, and the key of a tenant
    (acme) whose corpus holds the key-rotation document."""
    from tests.integration.test_job_path import ROTATION

    async def start(settings: Settings) -> str:
        await start_worker(settings)
        key = await issue_key("acme")
        await ingest(api, key, ROTATION)
        return key

    return start


@pytest.fixture
async def worker(settings: Settings, start_worker: Callable[[Settings], Awaitable[None]]) -> None:
    """A worker with the default test settings (no LLM)."""
    await start_worker(settings)


def auth(key: str) -> dict[str, str]:
    """Headers of an authenticated request."""
    return {"Authorization": f"Bearer {key}"}


async def ingest(api: httpx.AsyncClient, key: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Post a document and wait until it is indexed (or failed); returns its final record."""
    posted = await api.post("/v1/documents", json=doc, headers=auth(key))
    assert posted.status_code == 202, posted.text
    return await settled(api, key, posted.json()["id"])


async def settled(api: httpx.AsyncClient, key: str, doc_id: str) -> dict[str, Any]:
    """A document's record once it is indexed or failed (the worker is another task: poll)."""
    while True:
        record = (await api.get(f"/v1/documents/{doc_id}", headers=auth(key))).json()
        if record["status"] in {"indexed", "failed"}:
            return dict(record)
        await asyncio.sleep(0.05)


async def finished(api: httpx.AsyncClient, key: str, job_id: str) -> dict[str, Any]:
    """Long-poll a job until it is terminal."""
    while True:
        job = (await api.get(f"/v1/jobs/{job_id}?wait=10", headers=auth(key))).json()
        if job["status"] in {"completed", "failed", "cancelled"}:
            return dict(job)


async def sse_events(
    api: httpx.AsyncClient, key: str, job_id: str, **params: Any
) -> list[tuple[int, str, dict[str, Any]]]:
    """Read a job's whole SSE stream: (id, event, data) per event."""
    from httpx_sse import aconnect_sse

    out: list[tuple[int, str, dict[str, Any]]] = []
    async with aconnect_sse(
        api, "GET", f"/v1/jobs/{job_id}/events", headers=auth(key), params=params
    ) as source:
        async for event in source.aiter_sse():
            out.append((int(event.id), event.event, json.loads(event.data)))
    return out
