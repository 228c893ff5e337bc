"""End-to-end fixtures: real `ragq serve` / `ragq worker` processes and the test LLM server
as a process, on the test Redis DB, talked to over HTTP like any client.

The stack is the deploy gate's (`scripts/eval_gate.py`), plus the test LLM's controls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.eval_gate import POLL_S, START_TIMEOUT_S, GateError, free_port
from scripts.eval_gate import Stack as GateStack
from tests.conftest import TEST_REDIS_URL


class Stack(GateStack):
    """The gate's stack, with helpers e2e tests need."""

    async def start_api(self) -> None:
        """Start the API process `api` and point `url` at it once it is ready."""
        self.url = await self.serve("api")

    async def serve(self, name: str) -> str:
        """Start a `ragq serve` process on a free port; its base URL once /readyz is 200
        (a worker is live). Several may run side by side, each under its own name."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        await self.spawn(name, "serve", "--port", str(port))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            # across the process boundary there is no event: poll readiness
            while True:
                self._check_alive()
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz")).status_code == 200:
                        return url
                if loop.time() > deadline:
                    raise GateError(f"{name} was not ready after {START_TIMEOUT_S:.0f} s")
                await asyncio.sleep(POLL_S)

    async def start_worker(self, name: str = "worker") -> None:
        """Start a worker process (both queues)."""
        await self.spawn(name, "worker")

    async def index(self, key: str, document: dict[str, Any]) -> None:
        """Post a document through the API and return once it is indexed. Indexing happens
        in the worker process: there is no event to await across it, so this polls."""
        async with httpx.AsyncClient(base_url=self.url, headers=auth(key), timeout=60) as client:
            assert (await client.post("/v1/documents", json=document)).status_code == 202
            url = f"/v1/documents/{document['id']}"
            while (await client.get(url)).json()["status"] != "indexed":
                await asyncio.sleep(0.05)

    async def llm_stats(self, **wait: Any) -> dict[str, Any]:
        """The test LLM's counters; `wait=COUNTER, min=N` first waits for that bound."""
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.get(f"{self.llm_url}/_stats", params=wait)
            assert response.status_code == 200, response.text
            return dict(response.json())


@pytest.fixture
async def stack(tmp_path: Path, redis: Any) -> AsyncIterator[Stack]:
    """A stack on the test Redis DB; the test starts the parts it needs."""
    env = {
        **os.environ,
        "RAGQ_REDIS_URL": TEST_REDIS_URL,
        "RAGQ_KEY_PREFIX": "ragqtest",
        "RAGQ_QDRANT_PATH": str(tmp_path / "qdrant"),
        "RAGQ_LOG_LEVEL": "info",
        "RAGQ_HEARTBEAT_S": "0.5",
        "RAGQ_LOCK_TTL_S": "3",
        "RAGQ_WORKER_DRAIN_S": "0",
        "RAGQ_DEFAULT_RPM": "0",  # many requests per key; rate-limit tests give the key an rpm
        "RAGQ_WORKER_METRICS_PORT": "0",  # several workers per test; observability sets one
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RAGQ_LLM_BASE_URL", None)
    s = Stack(logs=tmp_path, env=env)
    try:
        yield s
    finally:
        await s.stop()


def auth(key: str) -> dict[str, str]:
    """Headers of an authenticated request."""
    return {"Authorization": f"Bearer {key}"}
