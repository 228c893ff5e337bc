"""Real processes: changing the embedding model under a running stack. A client keeps asking
while the worker is replaced by one with another RAGQ_EMBEDDINGS_MODEL; that worker answers
from the old collection, moves the tenant in the background, switches it and drops the old
collection. No question fails, and each one cites its document before, during and after."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts import harness
from tests.e2e.conftest import Stack, auth, finished

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus"
OLD, NEW = "wordllama-l2-supercat-256", "all-minilm-l6-v2"
# (question, the document that answers it), worded like the documents: both models find them
QUESTIONS = [
    ("What is the default value of relay.consumer.max_inflight?", "relay-consumer-tuning"),
    ("What is the default retention period for a relay topic?", "relay-retention"),
    (
        "On which port do relay producers and consumers connect to the brokers?",
        "relay-ports-and-protocols",
    ),
]


def _documents() -> list[dict[str, Any]]:
    wanted = {doc for _, doc in QUESTIONS} | {"atlas-faq", "atlas-canary-rollouts"}
    docs = []
    for line in (CORPUS / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry["id"] in wanted:
            text = (CORPUS / entry["path"]).read_text()
            docs.append({"id": entry["id"], "title": entry["title"], "text": text})
    return docs


async def _index_status(stack: Stack, model: str) -> dict[str, Any]:
    """`ragq index status` as an operator runs it, against the stack's Redis."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scripts.cli",
        "index",
        "status",
        env={**stack.env, "RAGQ_EMBEDDINGS_MODEL": model},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return dict(json.loads(out))


def _events(stack: Stack, process: str, name: str) -> list[dict[str, Any]]:
    lines = (stack.logs / f"{process}.log").read_text().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in events if e.get("event") == name]


@pytest.mark.timeout(300)  # two model loads and a re-embedding on a loaded machine
async def test_switching_the_embedding_model_fails_no_question(stack: Stack) -> None:
    stack.env["RAGQ_EMBEDDINGS_MODEL"] = OLD
    stack.env["RAGQ_REEMBED_GRACE_S"] = "1"
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    for doc in _documents():
        await stack.index(key, doc)
    asked: list[tuple[float, str, dict[str, Any]]] = []  # (submitted at, expected doc, job)
    enough = asyncio.Event()
    wanted = len(QUESTIONS)
    stop = asyncio.Event()

    async def keep_asking(client: httpx.AsyncClient, offset: int) -> None:
        n = offset
        while not stop.is_set():
            question, doc = QUESTIONS[n % len(QUESTIONS)]
            n += 1
            submitted = time.monotonic()
            response = await client.post("/v1/jobs", json={"question": question, "top_k": 3})
            assert response.status_code == 202, response.text
            asked.append((submitted, doc, await finished(client, response.json()["id"])))
            if len(asked) >= wanted:
                enough.set()

    async with httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60) as client:
        askers = [asyncio.create_task(keep_asking(client, i)) for i in range(2)]
        try:
            await enough.wait()  # answered from the old model's collection
            switch_began = time.monotonic()
            stack.procs["worker"].send_signal(signal.SIGTERM)
            await stack.procs["worker"].wait()
            stack.env["RAGQ_EMBEDDINGS_MODEL"] = NEW
            await stack.start_worker("worker2")

            async def moved() -> bool:
                return bool((await _index_status(stack, NEW))["done"])

            await harness.wait_until(moved, timeout_s=120, failure="the tenant was not moved")
            switch_ended = time.monotonic()
            enough.clear()
            wanted = len(asked) + len(QUESTIONS)  # and some answered from the new one
            await enough.wait()
        finally:
            stop.set()
            await asyncio.gather(*askers)

    failed = [job for _, _, job in asked if job["status"] != "completed"]
    assert not failed, stack.log_tails()
    for _, doc, job in asked:
        assert doc in {c["document_id"] for c in job["result"]["citations"]}, job["request"]
    during = [a for a in asked if switch_began <= a[0] <= switch_ended]
    after = [a for a in asked if a[0] > switch_ended]
    assert during, "no question was asked while the model was being switched"
    assert after
    status = await _index_status(stack, NEW)
    assert status["tenants"] == {"acme": NEW}
    assert status["base"] == NEW
    [moved_event] = _events(stack, "worker2", "reembed.tenant_moved")
    assert (moved_event["tenant"], moved_event["old"], moved_event["new"]) == ("acme", OLD, NEW)
    assert moved_event["chunks"] > 0
    assert [e["model"] for e in _events(stack, "worker2", "reembed.collection_dropped")] == [OLD]
