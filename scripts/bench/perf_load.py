"""The perf benchmark's client side: unique questions, a direct streaming call to the test
LLM, a job through `POST /v1/jobs` followed by long poll or by its SSE stream, a bare submit,
and the wait for many jobs to end. Built on the pickup benchmark's load generator (its
prompt capture, open loop, failure list and test-LLM controls)."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from scripts.bench.client import epoch, problem
from scripts.bench.pickup_load import PickupLoad
from scripts.bench.stack import log

OPENINGS = ("", "Quick one: ", "For the runbook: ")
TERMINAL = ("completed", "failed", "cancelled")
COLLECT_CONCURRENCY = 16  # long polls at once while waiting for an open-loop phase's jobs


@dataclass
class Timed:
    """One request seen from the client: wall time, time to the first answer text."""

    ms: float
    first_ms: float = math.nan
    job: dict[str, Any] | None = None


@dataclass
class Submit:
    """One `POST /v1/jobs` of an open-loop phase."""

    sent: float  # wall clock (epoch seconds) just before the request
    ms: float  # its round trip
    status: int
    job: dict[str, Any] | None  # the accepted job (202), then as it ended


@dataclass
class Latency:
    """The test LLM's latency setting and what a direct call measured with it."""

    first_token_ms: float
    token_ms: float
    tokens: int
    direct_ms: list[float]


async def sse_events(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> AsyncIterator[tuple[str, str]]:
    """`(event, data)` of a server-sent event stream, until the server ends it."""
    async with aconnect_sse(client, method, url, **kwargs) as source:
        if source.response.status_code != 200:
            await source.response.aread()
            raise RuntimeError(f"{method} {url}: {problem(source.response)}")
        async for event in source.aiter_sse():
            yield event.event, event.data


class PerfLoad(PickupLoad):
    """One stack under test, seen from its clients."""

    def __init__(self, *args: Any, bases: Sequence[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bases = list(bases)
        self.asked = 0

    def question(self) -> str:
        """A question no request has asked yet (see the report's Questions line)."""
        n = self.asked
        self.asked += 1
        base = self.bases[n % len(self.bases)]
        return f"{OPENINGS[n // len(self.bases) % len(OPENINGS)]}{base} (ticket OPS-{n:05d})"

    async def warm_up(self) -> None:
        """One `/v1/rag` per base question (unique variants); keep ragq's prompts."""
        self.questions = [self.question() for _ in self.bases]
        await self.capture_prompts()

    def prompt(self, n: int) -> list[dict[str, Any]]:
        """One of the prompts ragq built in the warm-up, in turn."""
        return self.prompts[self.questions[n % len(self.questions)]]

    async def direct(self, n: int) -> Timed:
        """A streaming chat completion straight to the test LLM, read to its end."""
        body = {
            "model": self.model,
            "messages": self.prompt(n),
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        t0 = time.perf_counter()
        first = math.nan
        url = f"{self.llm}/v1/chat/completions"
        async for _, data in sse_events(self.client, "POST", url, json=body):
            if data == "[DONE]":
                break
            choices = json.loads(data).get("choices") or [{}]
            if math.isnan(first) and choices[0].get("delta", {}).get("content"):
                first = (time.perf_counter() - t0) * 1000
        return Timed((time.perf_counter() - t0) * 1000, first)

    async def post_job(self, question: str) -> dict[str, Any]:
        """`POST /v1/jobs`; the accepted job."""
        r = await self.client.post(
            f"{self.api}/v1/jobs", json=self.body(question), headers=self.auth
        )
        if r.status_code != 202:
            raise RuntimeError(f"POST /v1/jobs: {problem(r)}")
        job: dict[str, Any] = r.json()
        return job

    async def polled_job(self, question: str) -> Timed:
        """Submit, then long poll until the job has ended."""
        t0 = time.perf_counter()
        job = await self.wait_job(await self.post_job(question))
        return Timed((time.perf_counter() - t0) * 1000, job=checked(job))

    async def streamed_job(self, question: str) -> Timed:
        """Submit, then read the job's SSE stream to its end; first `answer.delta` timed."""
        t0 = time.perf_counter()
        job = await self.post_job(question)
        first = math.nan
        url = f"{self.api}{job['links']['events']}"
        async for event, data in sse_events(self.client, "GET", url, headers=dict(self.auth)):
            if event == "answer.delta" and math.isnan(first):
                first = (time.perf_counter() - t0) * 1000
            elif event == "job.completed":
                job = json.loads(data)
            elif event in ("job.failed", "job.cancelled"):
                raise RuntimeError(f"job {job['id']} ended {event}: {data[:200]}")
        return Timed((time.perf_counter() - t0) * 1000, first, checked(job))

    async def calibrate_direct(
        self, target_ms: float, first_ms: float, tokens: int, calls: int = 12
    ) -> Latency:
        """Answers of `tokens` tokens, the first after `first_ms`; the per-token latency
        tuned until the median of `calls` direct calls is within 2% of `target_ms` (3 tries)."""
        per_token = (target_ms - first_ms) / max(tokens - 1, 1)
        measured: list[float] = []
        for attempt in range(3):
            await self.control(
                answer_tokens=tokens, first_token_latency_ms=first_ms, token_latency_ms=per_token
            )
            measured = [(await self.direct(i)).ms for i in range(calls)]
            median = statistics.median(measured)
            log(f"calibration {attempt + 1}: {per_token:.3f} ms/token -> {median:.1f} ms")
            if abs(median - target_ms) <= 0.02 * target_ms or median <= first_ms:
                break
            per_token = max(0.0, per_token * (target_ms - first_ms) / (median - first_ms))
        return Latency(first_ms, per_token, tokens, measured)

    async def submit(self, question: str, into: list[Submit]) -> None:
        """One open-loop submit: any status is kept; a transport error is a failure."""
        sent = time.time()
        t0 = time.perf_counter()
        try:
            r = await self.client.post(
                f"{self.api}/v1/jobs", json=self.body(question), headers=self.auth
            )
        except Exception as exc:
            self.fail("submit", len(into), f"{type(exc).__name__}: {exc}")
            return
        ms = (time.perf_counter() - t0) * 1000
        into.append(Submit(sent, ms, r.status_code, r.json() if r.status_code == 202 else None))

    async def collect(self, submits: Sequence[Submit], timeout_s: float) -> int:
        """Wait for every accepted job to end (each `job` replaced by its final state);
        the number still not terminal after `timeout_s` (lost)."""
        gate = asyncio.Semaphore(COLLECT_CONCURRENCY)
        deadline = asyncio.get_running_loop().time() + timeout_s
        lost = 0

        async def one(s: Submit) -> None:
            nonlocal lost
            assert s.job is not None
            async with gate:
                left = deadline - asyncio.get_running_loop().time()
                try:
                    s.job = await self.wait_job(s.job, timeout_s=max(left, 0.0))
                except RuntimeError as exc:
                    lost += 1
                    log(f"not terminal: {exc}")

        await asyncio.gather(*(one(s) for s in submits if s.job is not None))
        return lost


def checked(job: dict[str, Any]) -> dict[str, Any]:
    """The job, if it completed with an LLM answer; else an error."""
    if job["status"] != "completed":
        raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
    if job["result"].get("degraded"):
        raise RuntimeError(f"job {job['id']} degraded: {job['result'].get('degraded_reason')}")
    return job


def done_ms(s: Submit) -> float:
    """Submit (client clock) to `completed_at` (the job record), ms; NaN if not completed."""
    if s.job is None or s.job.get("status") != "completed" or not s.job.get("completed_at"):
        return math.nan
    return (epoch(s.job["completed_at"]) - s.sent) * 1000
