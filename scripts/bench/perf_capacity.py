"""Figures 6-8, open loop with ≈1 s answers: capacity (completions per second in steady state),
overload (5x capacity against an unloaded low-rate phase) and a soak at half capacity (the
API's and the worker's RSS before and after).

Each phase only submits (`POST /v1/jobs` at t0 + i/rate, whatever happened to earlier ones);
once the last is sent, every accepted job is waited for (long poll, 16 at a time), and its
submit → completed time is the job record's `completed_at` minus the client's clock just
before the submit (same machine, ms resolution)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.bench.client import epoch
from scripts.bench.perf_load import PerfLoad, Submit, done_ms
from scripts.bench.perf_report import DIST_COLS, Goal, Part, at_least, at_most, dist, ratio
from scripts.bench.reportfile import read_text, table
from scripts.bench.stack import log
from scripts.bench.stats import fmt, quantile

CAPACITY_SHARE = 0.9
OVERLOAD_FACTOR = 5.0
OVERLOAD_P99 = 1.5
REFUSAL_P99_MS = 5.0
RSS_GROWTH = 0.10
COLLECT_TIMEOUT_S = 180.0  # a job accepted but not terminal this long after the last send is lost
REFUSED = (429, 503)


@dataclass
class Phase:
    """One open-loop phase: what was offered and what came of it."""

    rate: float
    seconds: float
    submits: list[Submit]
    lost: int

    def accepted(self) -> list[Submit]:
        return [s for s in self.submits if s.job is not None]

    def refused(self) -> list[Submit]:
        return [s for s in self.submits if s.status in REFUSED]

    def done_ms(self) -> list[float]:
        return [v for s in self.submits if not math.isnan(v := done_ms(s))]

    def outcome(self) -> str:
        statuses = Counter(s.status for s in self.submits)
        ends = Counter(str(s.job["status"]) for s in self.accepted() if s.job)
        degraded = sum(
            bool(((s.job or {}).get("result") or {}).get("degraded")) for s in self.submits
        )
        text = ", ".join(f"HTTP {k}: {v}" for k, v in sorted(statuses.items()))
        ended = ", ".join(f"{k} {v}" for k, v in sorted(ends.items()))
        return (
            f"{len(self.submits)} sent ({text}); accepted jobs ended: {ended or 'none'}; "
            f"degraded answers {degraded}; lost {self.lost}"
        )


async def offer(load: PerfLoad, name: str, rate: float, seconds: float) -> Phase:
    """Submit open loop at `rate` for `seconds`, then wait for every accepted job to end."""
    n = max(1, round(rate * seconds))
    log(f"{name}: {n} submits at {rate:.1f}/s, open loop")
    submits: list[Submit] = []

    def request(scheduled: float) -> Coroutine[Any, Any, None]:
        return load.submit(load.question(), submits)

    schedule: list[tuple[float, Callable[[float], Coroutine[Any, Any, None]]]] = [
        (i / rate, request) for i in range(n)
    ]
    await load.open_loop(schedule, name)
    lost = await load.collect(submits, COLLECT_TIMEOUT_S)
    return Phase(rate, seconds, submits, lost)


def completions_per_s(phase: Phase, warmup_s: float) -> tuple[float, float]:
    """Completions per second between the first send + `warmup_s` and the last send (the
    queue is never empty then when more is offered than served); and that window, s."""
    sent = [s.sent for s in phase.submits]
    if not sent:
        return math.nan, 0.0
    lo, hi = min(sent) + warmup_s, max(sent)
    ends = [
        epoch(s.job["completed_at"])
        for s in phase.accepted()
        if s.job and s.job.get("completed_at")
    ]
    inside = sum(lo <= t <= hi for t in ends)
    return (inside / (hi - lo) if hi > lo else math.nan), hi - lo


def capacity_part(
    phase: Phase,
    max_jobs: int,
    answer_ms: float,
    profile: list[str],
    cpu: tuple[list[str], str],
) -> tuple[Part, float]:
    """Figure 6's part, and the measured capacity (jobs/s); `cpu`: the phase's CPU table
    and its bottleneck phrase (perf_cpu.py)."""
    warmup = min(5.0, phase.seconds / 4)
    rate, window = completions_per_s(phase, warmup)
    goal_rate = CAPACITY_SHARE * max_jobs
    lines = [
        f"Offered {phase.rate:g} jobs/s for {phase.seconds:g} s to one worker "
        f"(`RAGQ_WORKER_MAX_JOBS={max_jobs}`), answers of 200 tokens taking "
        f"{answer_ms:.0f} ms by a direct call. {phase.outcome()}.",
        "",
        f"Completions per second in steady state (from the first send + {warmup:g} s to the "
        f"last send, {window:.1f} s): **{fmt(rate, 1)}/s**.",
        "",
        *table(DIST_COLS, [dist("submit → completed, accepted jobs", phase.done_ms(), 0)]),
        "",
        "CPU over the phase (from its first submit to its last job's end), every process "
        "of the run on this one machine:",
        "",
        *cpu[0],
        "",
        *profile,
    ]
    met = at_least(rate, goal_rate)
    goal = Goal(
        "6 capacity",
        f"≥ {CAPACITY_SHARE} × {max_jobs} = {goal_rate:.1f} jobs/s, or the bottleneck named",
        f"{fmt(rate, 1)}/s" + ("" if met else f"; {cpu[1]}"),
        met,
    )
    return Part("6. Capacity of one worker", lines, [goal]), rate


def overload_part(low: Phase, over: Phase) -> Part:
    """Figure 7's part: accepted latency under overload vs. unloaded, refusals, lost jobs."""
    unloaded = quantile(low.done_ms(), 0.99)
    loaded = quantile(over.done_ms(), 0.99)
    refusal = quantile([s.ms for s in over.refused()], 0.99)
    lines = [
        *table(
            DIST_COLS,
            [
                dist(
                    f"unloaded ({low.rate:.1f}/s for {low.seconds:.0f} s): submit → completed",
                    low.done_ms(),
                    0,
                ),
                dist(
                    f"overload ({over.rate:.0f}/s for {over.seconds:g} s): accepted, submit → "
                    "completed",
                    over.done_ms(),
                    0,
                ),
                dist(
                    "overload: refusals (429/503), response time", [s.ms for s in over.refused()], 2
                ),
                dist(
                    "overload: accepted submits, response time", [s.ms for s in over.accepted()], 2
                ),
            ],
        ),
        "",
        f"Overload offered {OVERLOAD_FACTOR:g} × the capacity figure 6 measured (its estimate "
        "from `RAGQ_WORKER_MAX_JOBS` and the answer time when figure 6 did not run); the "
        "unloaded phase ran at the lower of 4/s and a quarter of that capacity, with the same "
        "≈1 s answers and the same admission settings.",
        "",
        f"- Unloaded: {low.outcome()}.",
        f"- Overload: {over.outcome()}; lost = accepted but not terminal {COLLECT_TIMEOUT_S:g} s "
        "after the last submit.",
    ]
    figure = "7 overload"
    value = ratio(loaded, unloaded)
    goals = [
        Goal(
            figure,
            f"accepted p99 ≤ {OVERLOAD_P99} × unloaded p99",
            f"{fmt(loaded)} / {fmt(unloaded)} ms = {fmt(value, 2)}×",
            at_most(value, OVERLOAD_P99),
        ),
        Goal(
            figure,
            f"refusals p99 ≤ {REFUSAL_P99_MS:g} ms",
            f"{fmt(refusal, 2)} ms (n={len(over.refused())})",
            at_most(refusal, REFUSAL_P99_MS) if over.refused() else None,
        ),
        Goal(figure, "lost jobs = 0", str(low.lost + over.lost), low.lost + over.lost == 0),
    ]
    return Part("7. Overload", lines, goals)


def rss_kb(pid: int) -> int:
    """VmRSS of a process and all its descendants, KiB."""
    total = 0
    for line in read_text(Path(f"/proc/{pid}/status")).splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1])
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        total += sum(rss_kb(int(child)) for child in read_text(task).split())
    return total


async def soak(load: PerfLoad, pids: dict[str, int], rate: float, seconds: float) -> Part:
    """Figure 8: RSS of each process before and after `seconds` at `rate`; peak sampled."""
    before = {name: rss_kb(pid) for name, pid in pids.items()}
    peak = dict(before)

    async def sample() -> None:
        while True:
            await asyncio.sleep(5)
            for name, pid in pids.items():
                peak[name] = max(peak[name], rss_kb(pid))

    sampler = asyncio.create_task(sample())
    try:
        phase = await offer(load, "soak", rate, seconds)
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    await asyncio.sleep(1)
    after = {name: rss_kb(pid) for name, pid in pids.items()}
    rows, goals = [], []
    for name in pids:
        growth = ratio(after[name] - before[name], before[name])
        rows.append(
            (
                name,
                f"{before[name] / 1024:.1f}",
                f"{peak[name] / 1024:.1f}",
                f"{after[name] / 1024:.1f}",
                f"{100 * growth:+.1f} %",
            )
        )
        goals.append(
            Goal(
                "8 soak",
                f"{name} RSS growth ≤ {RSS_GROWTH:.0%}",
                f"{100 * growth:+.1f} %",
                at_most(growth, RSS_GROWTH),
            )
        )
    lines = [
        f"{rate:.1f} jobs/s (half the measured capacity) for {seconds:g} s, ≈1 s answers. "
        f"{phase.outcome()}.",
        "",
        *table(("process", "RSS before (MiB)", "peak (MiB)", "after (MiB)", "growth"), rows),
        "",
        "VmRSS from /proc/PID/status, summed over the process and any children (`ragq serve` "
        "and `ragq worker` run as one process each here); before = just before the soak, "
        "after = once its last job ended, plus 1 s; peak sampled every 5 s.",
        "",
        *table(DIST_COLS, [dist("submit → completed", phase.done_ms(), 0)]),
    ]
    return Part("8. Soak: memory", lines, goals)
