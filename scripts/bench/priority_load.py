"""The priority benchmark's load generator: interactive jobs, open or closed loop, with and
without a flood of batch jobs waiting in the other queue; what each job cost is a `Sample`
and each timed window a `Phase`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from redis.asyncio import Redis

from scripts.bench.client import BenchClient, epoch, problem
from scripts.bench.idle import cpu_seconds
from scripts.bench.stack import KEY_PREFIX, StackError, log
from shared.redis_keys import Keys

SUBMIT_CONCURRENCY = 50  # flood submissions in flight at once
JOB_TIMEOUT_S = 120.0  # a job not terminal by then counts as a failure
FLOOD_DRAIN_TIMEOUT_S = 600.0
SETTLE_S = 1.0


@dataclass
class Sample:
    """One interactive job, as its client saw it and as the worker timed it."""

    queue_ms: float  # result.timings_ms.queue
    record_ms: float  # started_at - created_at of the job record
    e2e_ms: float  # POST /v1/jobs sent → terminal job read by the client
    retrieval_ms: float
    llm_ms: float
    tokens: int
    done_at: float  # loop time at which the client saw the job completed


@dataclass
class Phase:
    """One timed phase: interactive load, with or without a batch flood behind it."""

    name: str
    flood: bool
    closed: bool  # closed loop (clients keep slots busy) or open loop (fixed rate)
    window_s: float = 0.0  # the counted window (closed loop: after the warm-up)
    sent: int = 0
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    flood_submit_s: float = 0.0
    backlog_start: int = 0  # batch jobs queued or running when the window started
    backlog_end: int = 0  # ... when it ended
    counted: int = 0  # interactive jobs completed inside the window (closed loop)
    cpu: dict[str, float] = field(default_factory=dict)  # % of one CPU per process, whole phase

    @property
    def per_second(self) -> float:
        return self.counted / self.window_s if self.window_s else float("nan")


class PriorityLoad(BenchClient):
    """Drives one stack through the four phases."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        redis: Redis,
        api_url: str,
        llm_url: str,
        key: str,
        children: dict[str, int],
    ) -> None:
        super().__init__(client, api_url, llm_url, key)
        self.children = children
        self.redis = redis
        self.keys = Keys(KEY_PREFIX)
        self.questions: list[str] = []
        self.max_tokens = 20
        self._serial = 0
        self.flood_waits: list[float] = []  # queue waits of the drained flood's own jobs
        self.flood_span_s = 0.0  # first flood submission → last flood job completed

    # ---- requests

    def body(self, priority: str) -> dict[str, Any]:
        """A job body; a unique suffix keeps the answer cache from serving any job."""
        self._serial += 1
        question = self.questions[self._serial % len(self.questions)]
        return {
            "question": f"{question} (#{self._serial})",
            "max_tokens": self.max_tokens,
            "priority": priority,
        }

    async def submit(self, priority: str) -> dict[str, Any]:
        r = await self.client.post(
            f"{self.api}/v1/jobs", json=self.body(priority), headers=self.auth
        )
        if r.status_code != 202:
            raise RuntimeError(f"POST /v1/jobs: {problem(r)}")
        return dict(r.json())

    async def interactive(self, phase: Phase) -> None:
        """One interactive job, submitted and followed to its end; records a sample."""
        loop = asyncio.get_running_loop()
        phase.sent += 1
        try:
            sent = loop.time()
            job = await self.wait_job(await self.submit("interactive"), timeout_s=JOB_TIMEOUT_S)
            done_at = loop.time()
            if job["status"] != "completed":
                raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
            result = job["result"]
            if result.get("degraded"):
                raise RuntimeError(f"job {job['id']} degraded: {result.get('degraded_reason')}")
            timings = result["timings_ms"]
            phase.samples.append(
                Sample(
                    queue_ms=float(timings["queue"]),
                    record_ms=(epoch(job["started_at"]) - epoch(job["created_at"])) * 1000,
                    e2e_ms=(done_at - sent) * 1000,
                    retrieval_ms=float(timings.get("retrieval", float("nan"))),
                    llm_ms=float(timings.get("llm", float("nan"))),
                    tokens=int(result["usage"]["completion_tokens"]),
                    done_at=done_at,
                )
            )
        except Exception as exc:
            phase.failures.append(f"{type(exc).__name__}: {exc}")
            log(f"FAILURE {phase.name}: {type(exc).__name__}: {exc}")

    # ---- the queues

    async def depth(self, queue: str) -> int:
        """Jobs of a queue that are queued or running (arq keeps both in the sorted set)."""
        return int(await self.redis.zcard(self.keys.queue(queue)))

    async def wait_idle(self, timeout_s: float = FLOOD_DRAIN_TIMEOUT_S) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while await self.depth("interactive") or await self.depth("batch"):
            if loop.time() > deadline:
                raise StackError(f"the queues did not drain within {timeout_s:g} s")
            await asyncio.sleep(0.25)
        await asyncio.sleep(SETTLE_S)

    async def flood(self, n: int) -> tuple[list[str], float]:
        """Submit `n` batch jobs, SUBMIT_CONCURRENCY at a time; (ids, seconds it took)."""
        started = time.perf_counter()
        ids: list[str] = []
        for start in range(0, n, SUBMIT_CONCURRENCY):
            jobs = await asyncio.gather(
                *(self.submit("batch") for _ in range(min(SUBMIT_CONCURRENCY, n - start)))
            )
            ids += [job["id"] for job in jobs]
        return ids, time.perf_counter() - started

    async def cancel(self, ids: Sequence[str]) -> int:
        """Cancel the jobs that are not finished yet; returns how many were cancelled."""
        cancelled = 0
        for start in range(0, len(ids), SUBMIT_CONCURRENCY):
            replies = await asyncio.gather(
                *(
                    self.client.post(f"{self.api}/v1/jobs/{j}/cancel", headers=self.auth)
                    for j in ids[start : start + SUBMIT_CONCURRENCY]
                )
            )
            cancelled += sum(r.status_code == 200 for r in replies)
        return cancelled

    async def collect_flood(self, ids: Sequence[str], first_sent: float) -> None:
        """The drained flood's own queue waits: what one shared FIFO queue would cost."""
        last_done = first_sent
        for start in range(0, len(ids), SUBMIT_CONCURRENCY):
            replies = await asyncio.gather(
                *(
                    self.client.get(f"{self.api}/v1/jobs/{j}", headers=self.auth)
                    for j in ids[start : start + SUBMIT_CONCURRENCY]
                )
            )
            for r in replies:
                job = r.json()
                if r.status_code == 200 and job.get("started_at"):
                    wait = epoch(job["started_at"]) - epoch(job["created_at"])
                    self.flood_waits.append(wait * 1000)
                    if job.get("completed_at"):
                        last_done = max(last_done, epoch(job["completed_at"]))
        self.flood_span_s = last_done - first_sent

    # ---- phases

    async def open_loop(self, phase: Phase, rate: float, duration: float) -> None:
        """Interactive jobs at `rate`/s for `duration` s, whatever happened to earlier ones."""
        loop = asyncio.get_running_loop()
        n = max(1, round(rate * duration))
        start = loop.time() + 0.1
        tasks: list[asyncio.Task[None]] = []
        phase.backlog_start = await self.depth("batch")
        for i in range(n):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.interactive(phase)))
        phase.backlog_end = await self.depth("batch")
        phase.window_s = duration
        await asyncio.gather(*tasks)
        phase.counted = len(phase.samples)

    async def closed_loop(self, phase: Phase, clients: int, warmup: float, duration: float) -> None:
        """`clients` loops of submit-and-wait; count completions in a window after a warm-up."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        window = (t0 + warmup, t0 + warmup + duration)

        async def client() -> None:
            while loop.time() < window[1]:
                await self.interactive(phase)

        async def mark() -> None:
            await asyncio.sleep(warmup)
            phase.backlog_start = await self.depth("batch")
            await asyncio.sleep(duration)
            phase.backlog_end = await self.depth("batch")

        await asyncio.gather(mark(), *(client() for _ in range(clients)))
        phase.window_s = duration
        phase.counted = sum(window[0] <= s.done_at <= window[1] for s in phase.samples)
        phase.samples = [s for s in phase.samples if window[0] <= s.done_at <= window[1]]

    async def run_phase(
        self,
        phase: Phase,
        flood: int,
        body: Callable[[Phase], Awaitable[None]],
        *,
        drain_flood: bool,
    ) -> None:
        await self.wait_idle()
        ids: list[str] = []
        first_sent = time.time()
        if phase.flood:
            log(f"{phase.name}: submitting {flood} batch jobs")
            ids, phase.flood_submit_s = await self.flood(flood)
            log(f"{phase.name}: flood submitted in {phase.flood_submit_s:.1f} s")
        log(f"{phase.name}: interactive load")
        cpu_before = {name: cpu_seconds(pid) for name, pid in self.children.items()}
        wall = time.perf_counter()
        await body(phase)
        wall = time.perf_counter() - wall
        phase.cpu = {
            name: 100 * (cpu_seconds(pid) - cpu_before[name]) / wall
            for name, pid in self.children.items()
        }
        log(
            f"{phase.name}: {len(phase.samples)} samples, {len(phase.failures)} failures, "
            f"batch backlog {phase.backlog_start} -> {phase.backlog_end}"
        )
        if ids and drain_flood:
            log(f"{phase.name}: waiting for the flood to drain")
            await self.wait_idle()
            await self.collect_flood(ids, first_sent)
        elif ids:
            log(f"{phase.name}: cancelled {await self.cancel(ids)} unfinished batch jobs")

    async def warm_up(self) -> list[Sample]:
        """A few sequential interactive jobs: the path works, answers are not degraded."""
        phase = Phase("warm-up", flood=False, closed=False)
        for _ in range(5):
            await self.interactive(phase)
        if phase.failures:
            raise StackError(f"warm-up failed: {phase.failures[0]}")
        return phase.samples
