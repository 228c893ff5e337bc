"""The benchmarks' HTTP side: ragq's API with the run's key, and the test LLM's controls."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from scripts.bench.corpus import documents
from scripts.bench.stack import StackError, log
from scripts.harness import ingest

INDEX_TIMEOUT_S = 120.0


def problem(response: httpx.Response) -> str:
    """A failed response in one line."""
    return f"HTTP {response.status_code}: {response.text[:300]}"


def epoch(text: str) -> float:
    """An ISO timestamp of the API (`...Z`) as seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class BenchClient:
    """One load generator's view of the stack: the API at `api`, the test LLM at `llm`."""

    def __init__(self, client: httpx.AsyncClient, api_url: str, llm_url: str, key: str) -> None:
        self.client = client
        self.api = api_url
        self.llm = llm_url
        self.auth = {"Authorization": f"Bearer {key}"}

    async def ingest(self, doc_ids: Sequence[str]) -> None:
        """Post the documents, then wait until every one is `indexed`."""
        docs = await asyncio.to_thread(documents, doc_ids)
        async with httpx.AsyncClient(base_url=self.api, headers=self.auth, timeout=60) as api:
            await ingest(api, docs, timeout_s=INDEX_TIMEOUT_S)
        log(f"indexed {len(docs)} documents: {', '.join(doc_ids)}")

    async def control(self, **changes: float) -> None:
        """Change the test LLM's behaviour (`POST /_control`)."""
        r = await self.client.post(f"{self.llm}/_control", json=changes)
        if r.status_code != 200:
            raise StackError(f"test LLM /_control failed: {problem(r)}")

    async def wait_job(
        self, job: dict[str, Any], *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Long-poll a job until it is terminal (an error after `timeout_s`, if given)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while job["status"] not in ("completed", "failed", "cancelled"):
            if deadline is not None and loop.time() > deadline:
                raise RuntimeError(f"job {job['id']} still {job['status']} after {timeout_s} s")
            r = await self.client.get(
                f"{self.api}/v1/jobs/{job['id']}", params={"wait": 30}, headers=self.auth
            )
            if r.status_code != 200:
                raise RuntimeError(f"GET job: {problem(r)}")
            job = r.json()
        return job
