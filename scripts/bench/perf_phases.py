"""The perf benchmark's sequential figures: overhead over a direct LLM call (1), time to the
first token (2) and an answer-cache hit (3)."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from scripts.bench.perf_load import Latency, PerfLoad, Timed
from scripts.bench.perf_report import DIST_COLS, Goal, Part, at_most, dist, ratio
from scripts.bench.reportfile import table
from scripts.bench.stack import log
from scripts.bench.stats import fmt, quantile

OVERHEAD_P50 = 1.05
OVERHEAD_P99 = 1.15
TTFT_SLACK_MS = 10.0
CACHE_P50_MS = 3.0


async def attempt(
    load: PerfLoad, phase: str, index: int, request: Awaitable[Timed]
) -> Timed | None:
    """One request of a sequential phase; its failure is recorded, not raised."""
    try:
        return await request
    except Exception as exc:
        load.fail(phase, index, f"{type(exc).__name__}: {exc}")
        return None


def stage(job: dict[str, Any] | None, name: str) -> float | None:
    """One of the worker's `result.timings_ms` of a job."""
    if job is None or not job.get("result"):
        return None
    value = job["result"].get("timings_ms", {}).get(name)
    return None if value is None else float(value)


def latency_line(latency: Latency) -> str:
    """The test LLM's setting, as the report states it."""
    return (
        f"Test LLM: {latency.tokens}-token answers (`answer_tokens`), first token after "
        f"{latency.first_token_ms:g} ms, then {latency.token_ms:.3f} ms per token; a direct "
        f"call measured {fmt(quantile(latency.direct_ms, 0.5), 1)} ms median in calibration "
        f"(n={len(latency.direct_ms)})."
    )


async def overhead(load: PerfLoad, n: int, latency: Latency) -> Part:
    """Figure 1: direct streaming calls and submit + long poll, interleaved, sequential."""
    log(f"overhead: {n} direct calls and {n} jobs (submit + long poll), interleaved")
    direct: list[float] = []
    jobs: list[Timed] = []
    for i in range(n):
        if d := await attempt(load, "overhead-direct", i, load.direct(i)):
            direct.append(d.ms)
        if j := await attempt(load, "overhead-job", i, load.polled_job(load.question())):
            jobs.append(j)
    job_ms = [j.ms for j in jobs]
    p50 = ratio(quantile(job_ms, 0.5), quantile(direct, 0.5))
    p99 = ratio(quantile(job_ms, 0.99), quantile(direct, 0.99))
    stages = {
        name: [v for j in jobs if (v := stage(j.job, name)) is not None]
        for name in ("queue", "retrieval", "llm", "total")
    }
    lines = [
        latency_line(latency),
        "",
        *table(
            DIST_COLS,
            [
                dist("direct streaming chat call, read to the end", direct),
                dist("`POST /v1/jobs` + long poll `GET ?wait=30` until completed", job_ms),
                *(dist(f"— the job's own `timings_ms.{k}`", v, 0) for k, v in stages.items()),
            ],
        ),
        "",
        f"Ratio job / direct: p50 {fmt(p50, 3)}, p99 {fmt(p99, 3)}. One direct call, then one "
        "job, and so on; the direct call sends a prompt ragq built in the warm-up.",
    ]
    figure = "1 overhead"
    goals = [
        Goal(figure, f"p50 ratio ≤ {OVERHEAD_P50}", fmt(p50, 3), at_most(p50, OVERHEAD_P50)),
        Goal(figure, f"p99 ratio ≤ {OVERHEAD_P99}", fmt(p99, 3), at_most(p99, OVERHEAD_P99)),
    ]
    return Part("1. Overhead over a direct LLM call (sequential)", lines, goals)


async def ttft(load: PerfLoad, n: int, latency: Latency) -> Part:
    """Figure 2: the first `answer.delta` over SSE vs. a direct call's first token."""
    log(f"time to first token: {n} direct calls and {n} jobs over SSE, interleaved")
    direct: list[float] = []
    ragq: list[float] = []
    retrieval: list[float] = []
    for i in range(n):
        if d := await attempt(load, "ttft-direct", i, load.direct(i)):
            direct.append(d.first_ms)
        if j := await attempt(load, "ttft-sse", i, load.streamed_job(load.question())):
            ragq.append(j.first_ms)
            if (value := stage(j.job, "retrieval")) is not None:
                retrieval.append(value)
    diff = quantile(ragq, 0.5) - quantile(direct, 0.5)
    bound = TTFT_SLACK_MS + quantile(retrieval, 0.5)
    lines = [
        latency_line(latency),
        "",
        *table(
            DIST_COLS,
            [
                dist("direct call: first content chunk", direct),
                dist(
                    "ragq: `POST /v1/jobs`, then `GET /v1/jobs/{id}/events`: first `answer.delta`",
                    ragq,
                ),
                dist("— the job's own `timings_ms.retrieval`", retrieval, 0),
            ],
        ),
        "",
        f"Difference of the p50s: {fmt(diff, 1)} ms; goal ≤ {TTFT_SLACK_MS:g} ms + retrieval "
        f"p50 = {fmt(bound, 1)} ms. The ragq side is timed from just before the submit.",
    ]
    goal = Goal(
        "2 time to first token",
        f"p50 difference ≤ {TTFT_SLACK_MS:g} ms + retrieval p50",
        f"{fmt(diff, 1)} ms (bound {fmt(bound, 1)} ms)",
        at_most(diff, bound),
    )
    return Part("2. Time to first token over SSE", lines, [goal])


async def cache_hit(load: PerfLoad, n: int) -> Part:
    """Figure 3: one temperature-0 question asked again: submit → completed."""
    log(f"answer cache: one question, a warm-up, then {n} repeats")
    question = load.question()
    await load.polled_job(question)
    times: list[float] = []
    at_submit = cached = 0
    for i in range(n):
        t0 = time.perf_counter()
        try:
            job = await load.post_job(question)
            at_submit += job["status"] == "completed"
            job = await load.wait_job(job)
        except Exception as exc:
            load.fail("cache", i, f"{type(exc).__name__}: {exc}")
            continue
        times.append((time.perf_counter() - t0) * 1000)
        cached += bool((job.get("result") or {}).get("cached"))
    p50 = quantile(times, 0.5)
    lines = [
        *table(DIST_COLS, [dist("`POST /v1/jobs` (same question) → `completed`", times, 2)]),
        "",
        f"{at_submit} of {len(times)} were `completed` in the submit's own response, "
        f"{cached} had `result.cached: true` (temperature 0, `RAGQ_ANSWER_CACHE_TTL_S` on).",
    ]
    goal = Goal(
        "3 answer cache hit",
        f"p50 ≤ {CACHE_P50_MS:g} ms",
        f"{fmt(p50, 2)} ms",
        at_most(p50, CACHE_P50_MS),
    )
    return Part("3. Identical question, answer cache hit", lines, [goal])
