"""End-to-end fixtures: real `ragq serve` / `ragq worker` processes and the test LLM server
as a process, on the test Redis DB, talked to over HTTP like any client.

The stack is the process harness's (`scripts/harness/`, also used by the deploy gate and
the benchmarks), plus what e2e tests need: indexing one document and the test LLM's
counters.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts import harness
from tests.conftest import TEST_REDIS_URL


class Stack(harness.Stack):
    """The harness's stack, with helpers e2e tests need."""

    async def index(self, key: str, document: dict[str, Any]) -> None:
        """Post a document through the API and return once it is indexed. Indexing happens
        in the worker process: there is no event to await across it, so this polls the
        document (`GET /v1/documents/{id}`, a route the metrics tests expect), bounded."""
        async with httpx.AsyncClient(base_url=self.url, headers=auth(key), timeout=60) as client:
            assert (await client.post("/v1/documents", json=document)).status_code == 202
            url = f"/v1/documents/{document['id']}"

            async def indexed() -> bool:
                return bool((await client.get(url)).json()["status"] == "indexed")

            await harness.wait_until(
                indexed,
                timeout_s=harness.INDEX_TIMEOUT_S,
                failure=f"{document['id']} was not indexed",
                poll_s=0.05,
            )

    async def llm_stats(self, **wait: Any) -> dict[str, Any]:
        """The test LLM's counters; `wait=COUNTER, min=N` first waits for that bound."""
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.get(f"{self.llm_url}/_stats", params=wait)
            assert response.status_code == 200, response.text
            return dict(response.json())


def stack_env(tmp_path: Path, redis_url: str, key_prefix: str) -> dict[str, str]:
    """The environment of a test stack's processes (no LLM until the test starts one)."""
    env = {
        **os.environ,
        "RAGQ_REDIS_URL": redis_url,
        "RAGQ_KEY_PREFIX": key_prefix,
        "RAGQ_QDRANT_PATH": str(tmp_path / "qdrant"),
        "RAGQ_LOG_LEVEL": "info",
        "RAGQ_HEARTBEAT_S": "0.5",
        "RAGQ_LOCK_TTL_S": "9",  # renewed every 3 s: a loaded machine never loses a lock
        "RAGQ_WORKER_DRAIN_S": "0",
        "RAGQ_DEFAULT_RPM": "0",  # many requests per key; rate-limit tests give the key an rpm
        "RAGQ_MAX_QUEUE_WAIT_S": "0",  # shedding by estimated wait: tested on its own
        "RAGQ_WORKER_METRICS_PORT": "0",  # several workers per test; observability sets one
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RAGQ_LLM_BASE_URL", None)
    return env


@pytest.fixture
async def stack(tmp_path: Path, redis: Any) -> AsyncIterator[Stack]:
    """A stack on the test Redis DB; the test starts the parts it needs."""
    s = Stack(tmp_path, stack_env(tmp_path, TEST_REDIS_URL, "ragqtest"))
    try:
        yield s
    finally:
        await s.stop()


TERMINAL = frozenset({"completed", "failed", "cancelled"})


async def finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """Long-poll a job until it is terminal, however long a loaded machine takes (the
    test's own timeout bounds it)."""
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}?wait=30")).json()
        if job["status"] in TERMINAL:
            return dict(job)


def auth(key: str) -> dict[str, str]:
    """Headers of an authenticated request."""
    return {"Authorization": f"Bearer {key}"}
