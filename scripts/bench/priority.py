"""Benchmark: does a flood of batch jobs delay interactive jobs? (issue #4, item 4)

Starts a real stack (test LLM, `ragq serve`, one `ragq worker` serving both queues) on
Redis DB 14 with a slow test LLM, and measures interactive jobs with no batch load and
while a flood of batch jobs waits: their queue wait at a fixed open-loop rate, and how many
complete per second when clients keep every interactive slot busy (closed loop). Prints
(and writes to `--out`) a Markdown section. Process handling and the report file come
from `pickup.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as `python scripts/bench/priority.py`
    sys.path.insert(0, str(ROOT))

from scripts.bench import pickup  # noqa: E402  (needs the repository root on sys.path)
from scripts.bench.pickup import StackError, log, quantile  # noqa: E402
from shared.redis_keys import Keys  # noqa: E402

SECTION = "priority"
TITLE = "Interactive jobs during a batch flood (separate queues)"
DOCS = pickup.DOCS
SUBMIT_CONCURRENCY = 50  # flood submissions in flight at once
JOB_TIMEOUT_S = 120.0  # a job not terminal by then counts as a failure
FLOOD_DRAIN_TIMEOUT_S = 600.0
SETTLE_S = 1.0
DEFAULT_ENV = {
    "RAGQ_DEFAULT_RPM": "0",  # one key sends the whole load; rate limits are not measured here
}
REPORTED_SETTINGS = (
    "worker_max_jobs",
    "worker_poll_s",
    "max_queue_depth",
    "default_rpm",
    "answer_cache_ttl_s",
    "llm_timeout_s",
)


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


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Bench:
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
        self.client = client
        self.children = children
        self.redis = redis
        self.api = api_url
        self.llm = llm_url
        self.auth = {"Authorization": f"Bearer {key}"}
        self.keys = Keys(pickup.KEY_PREFIX)
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
            raise RuntimeError(f"POST /v1/jobs: {pickup._problem(r)}")
        return dict(r.json())

    async def wait_job(self, job: dict[str, Any]) -> dict[str, Any]:
        """Long-poll a job until it is terminal."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + JOB_TIMEOUT_S
        while job["status"] not in ("completed", "failed", "cancelled"):
            if loop.time() > deadline:
                raise RuntimeError(f"job {job['id']} still {job['status']} after {JOB_TIMEOUT_S} s")
            r = await self.client.get(
                f"{self.api}/v1/jobs/{job['id']}", params={"wait": 30}, headers=self.auth
            )
            if r.status_code != 200:
                raise RuntimeError(f"GET job: {pickup._problem(r)}")
            job = r.json()
        return job

    async def interactive(self, phase: Phase) -> None:
        """One interactive job, submitted and followed to its end; records a sample."""
        loop = asyncio.get_running_loop()
        phase.sent += 1
        try:
            sent = loop.time()
            job = await self.wait_job(await self.submit("interactive"))
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
                    record_ms=(_epoch(job["started_at"]) - _epoch(job["created_at"])) * 1000,
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
                    wait = _epoch(job["started_at"]) - _epoch(job["created_at"])
                    self.flood_waits.append(wait * 1000)
                    if job.get("completed_at"):
                        last_done = max(last_done, _epoch(job["completed_at"]))
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
        cpu_before = {name: pickup.cpu_seconds(pid) for name, pid in self.children.items()}
        wall = time.perf_counter()
        await body(phase)
        wall = time.perf_counter() - wall
        phase.cpu = {
            name: 100 * (pickup.cpu_seconds(pid) - cpu_before[name]) / wall
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

    # ---- setup

    async def control(self, **changes: float) -> None:
        r = await self.client.post(f"{self.llm}/_control", json=changes)
        if r.status_code != 200:
            raise StackError(f"test LLM /_control failed: {pickup._problem(r)}")

    async def ingest(self) -> None:
        manifest = pickup.load_manifest()
        for doc_id in DOCS:
            body = {
                "id": doc_id,
                "title": manifest.get(doc_id, doc_id),
                "text": pickup.read_doc(doc_id),
            }
            r = await self.client.post(f"{self.api}/v1/documents", json=body, headers=self.auth)
            if r.status_code != 202:
                raise StackError(f"ingest of {doc_id} failed: {pickup._problem(r)}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pickup.INDEX_TIMEOUT_S
        for doc_id in DOCS:
            while True:
                r = await self.client.get(f"{self.api}/v1/documents/{doc_id}", headers=self.auth)
                status = r.json().get("status") if r.status_code == 200 else pickup._problem(r)
                if status == "indexed":
                    break
                if status not in ("queued", "indexing") or loop.time() > deadline:
                    raise StackError(f"document {doc_id} did not index: {status}")
                await asyncio.sleep(0.2)
        log(f"indexed {len(DOCS)} documents")

    async def warm_up(self) -> list[Sample]:
        """A few sequential interactive jobs: the path works, answers are not degraded."""
        phase = Phase("warm-up", flood=False, closed=False)
        for _ in range(5):
            await self.interactive(phase)
        if phase.failures:
            raise StackError(f"warm-up failed: {phase.failures[0]}")
        return phase.samples


# --------------------------------------------------------------------------- report


def _ms(values: Sequence[float], q: float) -> str:
    return pickup.fmt(quantile(values, q))


def _row(phase: Phase, backlog: bool = True) -> str:
    queue = [s.queue_ms for s in phase.samples]
    record = [s.record_ms for s in phase.samples]
    e2e = [s.e2e_ms for s in phase.samples]
    flood = f"{phase.backlog_start} → {phase.backlog_end}" if phase.flood else "none"
    cells = [
        phase.name,
        flood if backlog else "",
        str(len(phase.samples)),
        _ms(queue, 0.5),
        _ms(queue, 0.95),
        _ms(queue, 1.0),
        _ms(record, 0.5),
        _ms(record, 0.95),
        _ms(e2e, 0.5),
        _ms(e2e, 0.95),
    ]
    return "| " + " | ".join(cells) + " |"


def _stage_row(phase: Phase) -> str:
    retrieval = [s.retrieval_ms for s in phase.samples]
    llm = [s.llm_ms for s in phase.samples]
    cpu = [f"{phase.cpu.get(name, float('nan')):.0f} %" for name in ("worker", "api", "testllm")]
    cells = [phase.name, _ms(retrieval, 0.5), _ms(retrieval, 0.95), _ms(llm, 0.5), _ms(llm, 0.95)]
    return "| " + " | ".join(cells + cpu) + " |"


@dataclass
class Report:
    command: str
    commit: str
    started: datetime
    machine: dict[str, str]
    env: dict[str, str]
    settings: dict[str, str]
    args: argparse.Namespace
    warmup: list[Sample]
    phases: dict[str, Phase]
    flood_waits: list[float]
    flood_span_s: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    log_findings: list[str]

    def table(self) -> list[str]:
        """The summary table (also printed on its own)."""
        p = self.phases
        return [
            "| interactive load | batch flood (backlog start → end) | n | queue wait p50 (ms) "
            "| p95 | max | `started_at − created_at` p50 (ms) | p95 | submit → completed p50 "
            "(ms) | p95 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            _row(p["open-idle"]),
            _row(p["open-flood"]),
            "",
            "| interactive load | batch flood (backlog start → end) | interactive jobs "
            "completed/s | n in window | queue wait p50 (ms) | p95 |",
            "|---|---|---:|---:|---:|---:|",
            *[
                f"| {ph.name} | "
                + (f"{ph.backlog_start} → {ph.backlog_end}" if ph.flood else "none")
                + f" | {ph.per_second:.2f} | {ph.counted} | "
                f"{_ms([s.queue_ms for s in ph.samples], 0.5)} | "
                f"{_ms([s.queue_ms for s in ph.samples], 0.95)} |"
                for ph in (p["closed-idle"], p["closed-flood"])
            ],
        ]

    def markdown(self) -> str:
        a = self.args
        p = self.phases
        begin, end = pickup.markers(a.section)
        llm = [s.llm_ms for s in self.warmup]
        tokens = sorted({s.tokens for ph in p.values() for s in ph.samples})
        open_idle, open_flood = p["open-idle"], p["open-flood"]
        worst = _ms([s.record_ms for s in open_flood.samples], 1.0)
        closed_idle, closed_flood = p["closed-idle"], p["closed-flood"]
        slots = self.settings.get("RAGQ_WORKER_MAX_JOBS", "?")
        lines = [
            begin,
            f"## {a.title}",
            "",
            f"Command: `{self.command}` (from the repository root).",
            "",
            f"- Run: {self.started:%Y-%m-%d %H:%M} UTC, commit `{self.commit}` (the working tree "
            "may hold uncommitted edits)" + (f" — {a.note}" if a.note else ""),
            f"- Machine: {self.machine['nproc']} CPUs (`nproc`), `{self.machine['cpu']}` "
            f"(`lscpu` model name), {self.machine['memory']} RAM, Linux "
            f"{self.machine['kernel']}, Python {self.machine['python']}, Redis "
            f"{self.machine['redis']}.",
            f"- Load average (1/5/15 min) before: {pickup._load(self.load_before)}, after: "
            f"{pickup._load(self.load_after)}.",
            "- Stack: `scripts/testllm.py --port 0`, `ragq serve`, one `ragq worker` serving both "
            "queues (each queue its own arq worker with its own slots), all as separate "
            "processes on this machine, plus this load generator.",
            "- Environment: "
            + ", ".join(f"`{k}={v}`" for k, v in sorted(self.env.items()))
            + "; effective: "
            + ", ".join(f"`{k}={v}`" for k, v in self.settings.items())
            + ".",
            f"- Test LLM (slow on purpose): first token {a.first_token_ms:g} ms + "
            f"{a.token_ms:g} ms per further token, `max_tokens={a.max_tokens}`; answers had "
            f"{', '.join(map(str, tokens)) or 'n/a'} completion tokens; the LLM stage took "
            f"{_ms(llm, 0.5)} ms median in the warm-up (n={len(llm)}, sequential). The test "
            "LLM does not slow down with concurrent streams, so what the two queues share here "
            "is the worker process, the API, Redis and the 2 CPUs, not a GPU.",
            f"- Data: {len(DOCS)} documents from `data/corpus/`; questions from "
            "`data/deploy_eval.jsonl` in turn, each with a unique suffix `(#n)` so the answer "
            "cache never serves a job.",
            f"- Flood: {a.flood} `priority: batch` jobs submitted {SUBMIT_CONCURRENCY} at a time "
            f"just before the interactive load (took {open_flood.flood_submit_s:.1f} s and "
            f'{closed_flood.flood_submit_s:.1f} s). "Backlog" is the batch queue\'s `ZCARD` '
            "(queued + running) when the interactive window began and ended: the flood was "
            "still waiting during the whole window when the end figure is above the batch "
            f"slots ({slots}).",
            f"- Open loop: {a.rate:g} interactive jobs/s for {a.duration:g} s (job i sent at "
            "t0 + i/rate whatever happened to earlier ones), each followed by long poll to its "
            f"end. Closed loop: {self.clients} clients (= the interactive slots), each "
            "submitting its next interactive job as soon as the last one ended; completions "
            f"counted over {a.duration:g} s after a {a.warmup:g} s warm-up. Percentiles are "
            "nearest-rank.",
            "",
            "### Interactive queue wait, with and without a flood of batch jobs",
            "",
            *self.table()[:4],
            "",
            "`queue wait` is the worker's `result.timings_ms.queue` (now − `created_at` once it "
            "has marked the job started); `started_at − created_at` uses the job record's two "
            "millisecond timestamps; `submit → completed` is the client's view, including the "
            "~"
            f"{_ms(llm, 0.5)} ms answer.",
            "",
            "### Interactive jobs completed per second, with and without a flood",
            "",
            *self.table()[5:],
            "",
            "### Where the time went (interactive jobs of each phase)",
            "",
            "| interactive load | `retrieval` p50 (ms) | p95 | `llm` p50 (ms) | p95 | CPU: worker "
            "| API | test LLM |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *[_stage_row(ph) for ph in p.values()],
            "",
            "CPU is % of one core over the whole phase (the flood's submission included); the "
            "worker runs both queues in one process with one event loop.",
            "",
            "### What a single FIFO queue would have cost",
            "",
            f"The open-loop flood's own {len(self.flood_waits)} batch jobs waited "
            f"{_ms(self.flood_waits, 0.5)} ms median, {_ms(self.flood_waits, 0.95)} ms p95 and "
            f"{_ms(self.flood_waits, 1.0)} ms at most (`started_at − created_at`); the flood "
            f"took {self.flood_span_s:.1f} s from its first submission to its last completion. "
            "An interactive job queued behind it in one shared queue would have waited up to "
            f"that long; on its own queue it waited {worst} ms at most.",
            "",
            "### Reading",
            "",
            f"- Queue wait p95 without / with the flood: "
            f"{_ms([s.queue_ms for s in open_idle.samples], 0.95)} / "
            f"{_ms([s.queue_ms for s in open_flood.samples], 0.95)} ms (open loop). "
            f"Interactive completions/s without / with the flood: {closed_idle.per_second:.2f} / "
            f"{closed_flood.per_second:.2f} (closed loop).",
            "- The flood cannot take an interactive slot: each queue has its own arq worker with "
            "its own `max_jobs`. What the queues still share is the one worker process (its "
            "event loop, the embedding and local-Qdrant executors, the GIL) and the machine's "
            "CPUs: when the worker is busy, interactive pickup and stages slow down with it "
            "(compare the CPU and stage columns above).",
            "",
            "### What limits these figures",
            "",
            f"- {self.machine['nproc']} CPUs shared by the load generator, the API, the worker, "
            "the test LLM and Redis, and whatever else runs on the machine (other engineers' "
            "test suites may run at the same time; see the load average).",
            "- Everything talks over loopback; the test LLM sleeps per token and does no "
            "inference, so a real model's batching and GPU contention are not modelled.",
            f"- {len(open_idle.samples)} and {len(open_flood.samples)} open-loop samples: the "
            "p95 rests on a handful of values and moves between runs.",
            "- The flood is submitted once, in a burst, before the interactive load; a steady "
            "trickle of batch jobs was not measured.",
        ]
        if self.log_findings:
            lines += ["", "### Warnings and errors in the stack's logs", ""]
            lines += [f"- `{finding}`" for finding in self.log_findings]
        lines.append(end)
        return "\n".join(lines)

    @property
    def clients(self) -> int:
        return int(self.args.clients or self.settings.get("RAGQ_WORKER_MAX_JOBS", "32"))


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace, stack_box: list[pickup.Stack]) -> int:
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    overrides = {**DEFAULT_ENV, **dict(item.split("=", 1) for item in args.env)}
    bad = [k for k in overrides if not k.startswith("RAGQ_")]
    if bad:
        raise StackError(f"--env takes RAGQ_* settings only, not {bad}")
    redis = Redis.from_url(pickup.REDIS_URL, decode_responses=True)
    workdir = Path(tempfile.mkdtemp(prefix="ragq-bench-priority-"))
    stack = pickup.Stack(workdir, dict(os.environ))
    stack_box.append(stack)
    ok = False
    try:
        try:
            await redis.ping()
        except Exception as exc:
            raise StackError(f"Redis at {pickup.REDIS_URL} does not answer: {exc}") from exc
        await redis.flushdb()
        redis_version = str((await redis.info("server"))["redis_version"])
        api_url, llm_url = await pickup.start_stack(stack, overrides, workdir)
        settings = pickup.effective_settings(stack.env, REPORTED_SETTINGS)
        clients = args.clients or int(settings["RAGQ_WORKER_MAX_JOBS"])
        if args.flood + 2 * clients > int(settings["RAGQ_MAX_QUEUE_DEPTH"]):
            raise StackError("--flood is above the admission limit: raise RAGQ_MAX_QUEUE_DEPTH")
        key = await pickup.create_key(stack.env)
        timeout = httpx.Timeout(JOB_TIMEOUT_S, connect=5.0, pool=30.0)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            children = {c.name: c.pid for c in stack.children}
            bench = Bench(client, redis, api_url, llm_url, key, children)
            bench.questions = pickup.load_questions(DOCS)
            bench.max_tokens = args.max_tokens
            await bench.ingest()
            await bench.control(
                first_token_latency_ms=args.first_token_ms, token_latency_ms=args.token_ms
            )
            warmup = await bench.warm_up()
            log(f"warm-up: llm stage {[round(s.llm_ms) for s in warmup]} ms")
            phases = {
                "open-idle": Phase("open loop, no flood", flood=False, closed=False),
                "open-flood": Phase(
                    f"open loop, {args.flood} batch jobs", flood=True, closed=False
                ),
                "closed-idle": Phase("closed loop, no flood", flood=False, closed=True),
                "closed-flood": Phase(
                    f"closed loop, {args.flood} batch jobs", flood=True, closed=True
                ),
            }

            def open_loop(phase: Phase) -> Awaitable[None]:
                return bench.open_loop(phase, args.rate, args.duration)

            def closed_loop(phase: Phase) -> Awaitable[None]:
                return bench.closed_loop(phase, clients, args.warmup, args.duration)

            await bench.run_phase(phases["open-idle"], 0, open_loop, drain_flood=False)
            await bench.run_phase(phases["open-flood"], args.flood, open_loop, drain_flood=True)
            await bench.run_phase(phases["closed-idle"], 0, closed_loop, drain_flood=False)
            await bench.run_phase(
                phases["closed-flood"], args.flood, closed_loop, drain_flood=False
            )
            await bench.wait_idle()
        load_after = os.getloadavg()
        await stack.stop()
        shown_env = {k: v for k, v in stack.env.items() if k.startswith("RAGQ_")}
        shown_env["RAGQ_QDRANT_PATH"] = "<temp dir>"
        shown_env["RAGQ_LLM_BASE_URL"] = "<test LLM>/v1"
        report = Report(
            command=shlex.join(["python", *sys.argv]),
            commit=pickup.git_commit(),
            started=started,
            machine=pickup.machine_info(redis_version),
            env=shown_env,
            settings=settings,
            args=args,
            warmup=warmup,
            phases=phases,
            flood_waits=bench.flood_waits,
            flood_span_s=bench.flood_span_s,
            load_before=load_before,
            load_after=load_after,
            log_findings=pickup.log_findings(c.log_path for c in stack.children),
        )
        for line in report.table():
            print(line)
        section = report.markdown()
        failures = [str(f) for phase in phases.values() for f in phase.failures]
        rc = pickup.publish(section, failures, args)
        ok = rc == 0
        return rc
    finally:
        await pickup.tear_down(stack, redis, workdir, keep=not ok or args.keep_logs)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--flood", type=int, default=500, help="batch jobs per flood")
    parser.add_argument("--rate", type=float, default=4.0, help="open loop: interactive jobs/s")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per timed window")
    parser.add_argument("--warmup", type=float, default=5.0, help="closed loop: seconds before")
    parser.add_argument(
        "--clients", type=int, default=0, help="closed loop: clients (0 = the interactive slots)"
    )
    parser.add_argument("--first-token-ms", type=float, default=100.0)
    parser.add_argument("--token-ms", type=float, default=150.0, help="test LLM: per token")
    parser.add_argument("--max-tokens", type=int, default=20, help="answer length cap")
    pickup.add_report_arguments(parser, SECTION, TITLE)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.warmup < 0 or args.flood < 1:
        parser.error("--rate, --duration and --flood must be positive, --warmup not negative")
    if args.clients < 0 or args.max_tokens < 1:
        parser.error("--clients must not be negative and --max-tokens must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return pickup.run_benchmark(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
