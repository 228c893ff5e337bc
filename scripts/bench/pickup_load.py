"""The pickup benchmark's load generator: a warm-up that captures ragq's prompts, the test
LLM calibrated to about 200 ms an answer, and two open-loop phases (`POST /v1/jobs`, then
`POST /v1/rag` interleaved with direct streaming calls to the test LLM)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from scripts.bench.client import BenchClient, epoch, problem
from scripts.bench.pickup_samples import (
    Calibration,
    CallSample,
    Failure,
    PickupSample,
    Results,
)
from scripts.bench.stack import StackError, log

TARGET_LLM_MS = 200.0  # one direct answer of the test LLM should take about this long
FIRST_TOKEN_MS = 60.0
DRAIN_TIMEOUT_S = 60.0  # after the last scheduled request, stragglers get this long
RAG_TIMEOUT_S = 60.0


class PickupLoad(BenchClient):
    """Drives one stack: warm-up, calibration and the two timed phases."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        oai: openai.AsyncOpenAI,
        api_url: str,
        llm_url: str,
        key: str,
    ) -> None:
        super().__init__(client, api_url, llm_url, key)
        self.oai = oai
        self.model = ""
        self.questions: list[str] = []
        self.prompts: dict[str, list[dict[str, Any]]] = {}
        self.max_tokens = 512  # lowered to the shortest warm-up answer by `calibrate`
        self.results = Results()

    # ---- setup

    async def capture_prompts(self) -> list[int]:
        """One sequential `/v1/rag` per question (also a warm-up); keep the prompt ragq sent."""
        r = await self.client.get(f"{self.llm}/v1/models")
        self.model = r.json()["data"][0]["id"]
        tokens: list[int] = []
        for question in self.questions:
            r = await self.client.post(
                f"{self.api}/v1/rag", json={"question": question}, headers=self.auth
            )
            if r.status_code != 200:
                raise StackError(f"warm-up /v1/rag failed: {problem(r)}")
            answer = r.json()
            if answer.get("degraded"):
                raise StackError(f"warm-up answer was degraded: {answer.get('degraded_reason')}")
            stats = (await self.client.get(f"{self.llm}/_stats")).json()
            self.prompts[question] = stats["last_request"]["messages"]
            tokens.append(int(answer["usage"]["completion_tokens"]))
        return tokens

    def body(self, question: str) -> dict[str, Any]:
        """The job body of the timed phases."""
        return {"question": question, "max_tokens": self.max_tokens}

    async def direct_call(self, question: str) -> tuple[float, int]:
        """One streaming chat completion straight to the test LLM, consumed to the end."""
        started = time.perf_counter()
        stream = await self.oai.chat.completions.create(
            model=self.model,
            messages=cast(list[ChatCompletionMessageParam], self.prompts[question]),
            max_tokens=self.max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        tokens = 0
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
        return (time.perf_counter() - started) * 1000, tokens

    async def calibrate(self, tokens: list[int]) -> Calibration:
        """Pick latencies so one direct answer takes about TARGET_LLM_MS, and confirm it.

        Answers are capped at the shortest warm-up answer's length (`max_tokens`, on both
        sides), so every answer has the same number of tokens and takes the same time.
        """
        self.max_tokens = max(1, min(tokens))
        first = FIRST_TOKEN_MS
        per_token = max(0.0, (TARGET_LLM_MS - first) / max(self.max_tokens - 1, 1))
        measured: list[float] = []
        for attempt in range(1, 4):
            await self.control(first_token_latency_ms=first, token_latency_ms=per_token)
            measured = []
            for _ in range(2):
                for question in self.questions:
                    ms, _ = await self.direct_call(question)
                    measured.append(ms)
            median = statistics.median(measured)
            log(
                f"calibration {attempt}: first token {first:.0f} ms + {per_token:.2f} ms/token x "
                f"({self.max_tokens} tokens) -> direct call median {median:.1f} ms "
                f"(min {min(measured):.1f}, max {max(measured):.1f}, n={len(measured)})"
            )
            if abs(median - TARGET_LLM_MS) <= 0.05 * TARGET_LLM_MS or median <= first:
                break
            per_token *= (TARGET_LLM_MS - first) / (median - first)
        return Calibration(first, per_token, self.max_tokens, tokens, measured)

    # ---- timed phases

    async def open_loop(
        self, schedule: list[tuple[float, Callable[[float], Coroutine[Any, Any, None]]]], phase: str
    ) -> None:
        """Start each request at its offset whatever happened to earlier ones, then drain."""
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.2
        tasks: list[asyncio.Task[None]] = []
        try:
            for offset, request in sorted(schedule, key=lambda item: item[0]):
                delay = start + offset - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(request(start + offset)))
            _, pending = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT_S)
        finally:  # on a drain timeout, or when the benchmark itself is cancelled
            unfinished = [task for task in tasks if not task.done()]
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        if pending:
            self.fail(
                phase,
                -1,
                f"{len(pending)} request(s) unfinished {DRAIN_TIMEOUT_S:g} s "
                "after the last send (cancelled)",
            )

    def fail(self, phase: str, index: int, detail: str) -> None:
        self.results.failures.append(Failure(phase, index, detail))
        log(f"FAILURE {phase} #{index}: {detail}")

    async def pickup_request(self, index: int, scheduled: float) -> None:
        loop = asyncio.get_running_loop()
        lag_ms = (loop.time() - scheduled) * 1000
        question = self.questions[index % len(self.questions)]
        try:
            sent = time.perf_counter()
            r = await self.client.post(
                f"{self.api}/v1/jobs", json=self.body(question), headers=self.auth
            )
            enqueue_ms = (time.perf_counter() - sent) * 1000
            if r.status_code != 202:
                raise RuntimeError(f"POST /v1/jobs: {problem(r)}")
            job = await self.wait_job(r.json())
            if job["status"] != "completed":
                raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
            result = job["result"]
            if result.get("degraded"):
                raise RuntimeError(f"job {job['id']} degraded: {result.get('degraded_reason')}")
            record_ms = (epoch(job["started_at"]) - epoch(job["created_at"])) * 1000
            sample = PickupSample(
                float(result["timings_ms"]["queue"]), record_ms, enqueue_ms, lag_ms
            )
            self.results.pickup.append(sample)
        except Exception as exc:
            self.fail("pickup", index, f"{type(exc).__name__}: {exc}")

    async def rag_request(self, index: int, scheduled: float) -> None:
        loop = asyncio.get_running_loop()
        lag_ms = (loop.time() - scheduled) * 1000
        question = self.questions[index % len(self.questions)]
        try:
            sent = time.perf_counter()
            r = await self.client.post(
                f"{self.api}/v1/rag",
                json={**self.body(question), "timeout": RAG_TIMEOUT_S},
                headers=self.auth,
            )
            if r.status_code != 200:
                raise RuntimeError(f"POST /v1/rag: {problem(r)}")
            body = r.json()  # read in full above: the wall time ends here
            ms = (time.perf_counter() - sent) * 1000
            if body.get("degraded"):
                raise RuntimeError(f"job {body['job_id']} degraded: {body.get('degraded_reason')}")
            tokens = int(body["usage"]["completion_tokens"])
            self.results.rag.append(CallSample(ms, tokens, lag_ms, body["job_id"]))
        except Exception as exc:
            self.fail("rag", index, f"{type(exc).__name__}: {exc}")

    async def direct_request(self, index: int, scheduled: float) -> None:
        loop = asyncio.get_running_loop()
        lag_ms = (loop.time() - scheduled) * 1000
        question = self.questions[index % len(self.questions)]
        try:
            ms, tokens = await self.direct_call(question)
            self.results.direct.append(CallSample(ms, tokens, lag_ms))
        except Exception as exc:
            self.fail("direct", index, f"{type(exc).__name__}: {exc}")

    async def run_pickup(self, rate: float, duration: float) -> None:
        n = max(1, round(rate * duration))
        log(f"pickup phase: {n} x POST /v1/jobs at {rate:g}/s, open loop")
        schedule: list[tuple[float, Callable[[float], Coroutine[Any, Any, None]]]] = [
            (i / rate, _bind(self.pickup_request, i)) for i in range(n)
        ]
        await self.open_loop(schedule, "pickup")

    async def run_overhead(self, rate: float, duration: float) -> None:
        n = max(1, round(rate * duration))
        log(
            f"overhead phase: {n} x POST /v1/rag and {n} x direct streaming calls, "
            f"each at {rate:g}/s, interleaved (half a period apart), open loop"
        )
        schedule: list[tuple[float, Callable[[float], Coroutine[Any, Any, None]]]] = []
        for i in range(n):
            schedule.append((i / rate, _bind(self.rag_request, i)))
            schedule.append(((i + 0.5) / rate, _bind(self.direct_request, i)))
        await self.open_loop(schedule, "overhead")
        await self.collect_stages()

    async def collect_stages(self) -> None:
        """Read the worker's stage timings of every `/v1/rag` job of the overhead phase."""
        stages: dict[str, list[float]] = {}
        for sample in self.results.rag:
            r = await self.client.get(f"{self.api}/v1/jobs/{sample.job_id}", headers=self.auth)
            if r.status_code != 200:
                self.fail("stages", -1, f"GET job {sample.job_id}: {problem(r)}")
                continue
            job = r.json()
            for name, value in (job["result"] or {}).get("timings_ms", {}).items():
                stages.setdefault(name, []).append(float(value))
            if job.get("started_at"):
                started = epoch(job["started_at"]) - epoch(job["created_at"])
                self.results.rag_pickup_ms.append(started * 1000)
        self.results.stages = stages


def _bind(
    method: Callable[[int, float], Coroutine[Any, Any, None]], index: int
) -> Callable[[float], Coroutine[Any, Any, None]]:
    def request(scheduled: float) -> Coroutine[Any, Any, None]:
        return method(index, scheduled)

    return request
