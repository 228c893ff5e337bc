"""The Python client (`shared.client`) against real processes: event streams resumed across
dropped connections, rate limits waited out, typed errors, and bulk ingest."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from scripts.harness import free_port
from shared.client import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    Client,
    IngestProgress,
    NotFound,
)
from shared.events import AnswerDelta, JobEvent, JobQueued
from tests.e2e.conftest import Stack
from tests.e2e.cutproxy import CuttingProxy

pytestmark = pytest.mark.e2e

DOC = {
    "id": "backups",
    "title": "Restoring backups",
    "text": (
        "# Restoring backups\n\n"
        "Restore a snapshot with the backup restore command, naming the snapshot id and the "
        "target cluster, and wait until every shard reports that its restore is complete. "
        "Restores run one shard at a time so that the cluster keeps serving reads.\n\n"
        "## Failures\n\n"
        "A restore that stops with error BKP-2207 found a snapshot made by a newer release; "
        "upgrade the cluster first and then run the same restore command again.\n"
    ),
}
QUESTION = "How do I restore a snapshot and what does error BKP-2207 mean?"


async def _stack(stack: Stack, *llm_flags: str, key_options: tuple[str, ...] = ()) -> str:
    """Start the test LLM, a worker and the API, index DOC; return a key."""
    await stack.start_llm(*llm_flags)
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme", *key_options)
    await stack.index(key, DOC)
    return key


def _answer(events: list[JobEvent]) -> str:
    return "".join(e.delta for e in events if isinstance(e, AnswerDelta))


async def test_async_stream_resumes_across_three_dropped_connections(stack: Stack) -> None:
    """A proxy drops the event stream three times mid-answer; the async client resumes each
    time with Last-Event-ID, and its deltas rebuild exactly the final answer."""
    key = await _stack(stack, "--token-latency-ms", "150")
    async with (
        CuttingProxy(stack.url, cuts=3) as proxy,
        AsyncClient(proxy.url, api_key=key) as ragq,
    ):
        events = [e async for e in ragq.ask(QUESTION)]
        assert isinstance(events[0], JobQueued)
        job = await ragq.get(events[0].job_id)
    assert job.result is not None
    assert proxy.cut == 3, stack.log_tails()
    assert ragq.stats.reconnects == 3
    assert events[-1].event == "job.completed"
    assert _answer(events) == job.result.answer
    assert job.result.degraded is False


async def test_sync_stream_resumes_after_a_dropped_connection(stack: Stack) -> None:
    """The sync client resumes a stream the proxy drops twice mid-answer, and its deltas
    rebuild exactly the final answer."""
    key = await _stack(stack, "--token-latency-ms", "150")

    def ask(url: str) -> tuple[list[JobEvent], str, int]:
        with Client(url, api_key=key) as ragq:
            job = ragq.submit(QUESTION)
            events = list(ragq.stream(job.id))
            final = ragq.wait(job.id)
            assert final.result is not None
            return events, final.result.answer, ragq.stats.reconnects

    async with CuttingProxy(stack.url, cuts=2) as proxy:
        events, answer, reconnects = await asyncio.to_thread(ask, proxy.url)
    assert proxy.cut == 2, stack.log_tails()
    assert reconnects == 2
    assert events[-1].event == "job.completed"
    assert _answer(events) == answer


async def test_rate_limited_submits_complete_by_waiting_retry_after(stack: Stack) -> None:
    """With a key allowed one unfinished job at a time, three concurrent submits are refused
    (429, Retry-After: 1) until a slot frees; the client waits each out and every job
    completes."""
    key = await _stack(stack, "--token-latency-ms", "20", key_options=("--max-concurrent", "1"))
    async with AsyncClient(stack.url, api_key=key, max_retries=100) as ragq:
        jobs = await asyncio.gather(*(ragq.answer(f"{QUESTION} ({i})") for i in range(3)))
    assert [j.status for j in jobs] == ["completed"] * 3, stack.log_tails()
    assert ragq.stats.rate_limited > 0
    assert ragq.waited_on_limits_s > 0


async def test_errors_are_typed(stack: Stack) -> None:
    """An unknown job raises NotFound with the request id; a bad key AuthenticationError;
    an address nobody listens on APIConnectionError."""
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    async with AsyncClient(stack.url, api_key=key) as ragq:
        with pytest.raises(NotFound) as missing:
            await ragq.get("job_does_not_exist")
    async with AsyncClient(stack.url, api_key="rq_not_a_key") as stranger:
        with pytest.raises(AuthenticationError) as refused:
            await stranger.usage()
    nowhere = f"http://127.0.0.1:{free_port()}"
    async with AsyncClient(nowhere, api_key=key, max_retries=1) as lost:
        with pytest.raises(APIConnectionError):
            await lost.get("job_x")
    assert missing.value.status == 404
    assert missing.value.type.endswith("not-found")
    assert missing.value.request_id != ""
    assert refused.value.status == 401
    assert lost.stats.requests == 2


async def test_documents_round_trip(stack: Stack) -> None:
    """A JSON document and an uploaded file are listed page by page (cursor followed), read
    back by id, and gone (NotFound) once deleted."""
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    async with AsyncClient(stack.url, api_key=key) as ragq:
        added = await ragq.add_document("Plain text.", title="A", id="a-doc")
        uploaded = await ragq.upload_document("b.md", b"# B\n\nMarkdown text.\n", id="b-doc")
        listed = [d.id async for d in ragq.list_documents(page_size=1)]
        got = await ragq.get_document("b-doc")
        await ragq.delete_document("a-doc")
        with pytest.raises(NotFound):
            await ragq.get_document("a-doc")
    assert (added.id, added.status) == ("a-doc", "queued")
    assert uploaded.id == "b-doc"
    assert listed == ["a-doc", "b-doc"]
    assert got.title == "B"


async def test_bulk_ingest_indexes_then_skips_unchanged(stack: Stack) -> None:
    """Ingesting 50 documents waits until all are indexed, reporting progress up to the
    total; ingesting them again finds every one unchanged."""
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    docs: list[dict[str, Any]] = [
        {"id": f"doc-{i:02d}", "title": f"Page {i}", "text": f"Page {i} says fact number {i}."}
        for i in range(50)
    ]
    seen: list[IngestProgress] = []
    async with AsyncClient(stack.url, api_key=key) as ragq:
        first = await ragq.ingest(docs, batch_size=20, progress=seen.append)
        second = await ragq.ingest(docs, batch_size=20)
    assert [o.status for o in first.outcomes] == ["indexed"] * 50, first.failures
    assert [o.id for o in first.outcomes] == [d["id"] for d in docs]
    assert seen[-1].indexed == seen[-1].total == 50
    assert [o.status for o in second.outcomes] == ["unchanged"] * 50
