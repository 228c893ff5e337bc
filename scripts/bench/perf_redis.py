"""Figure 5, Redis commands per completed job: `CONFIG RESETSTAT`, N sequential jobs, then
`INFO commandstats` of the run's own redis-server (so it counts this stack only); once with
a client that long-polls each job, once with one that reads its SSE stream, and the idle
background rate (no traffic) over as long a window."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from scripts.bench.perf_load import PerfLoad, Timed
from scripts.bench.perf_phases import attempt
from scripts.bench.perf_report import Goal, Part, at_most
from scripts.bench.reportfile import table
from scripts.bench.stack import log
from scripts.bench.stats import fmt

PER_JOB_GOAL = 30.0
TOP = 14
OWN = "config|resetstat"  # our own command, counted by the stats it resets


async def counted(
    redis: Redis, action: Callable[[], Awaitable[None]]
) -> tuple[Counter[str], float]:
    """Commands by name that the server ran during `action`, and how long it took."""
    await redis.config_resetstat()
    t0 = time.perf_counter()
    await action()
    elapsed = time.perf_counter() - t0
    stats = await redis.info("commandstats")  # an INFO is not in its own reply
    counts = Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})
    counts[OWN] -= 1
    return +counts, elapsed


async def commands_per_job(load: PerfLoad, redis: Redis, n: int) -> Part:
    """Figure 5 (see the module docstring)."""

    def sequential(
        phase: str, job: Callable[[str], Awaitable[Timed]]
    ) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            for i in range(n):
                await attempt(load, phase, i, job(load.question()))

        return run

    log(f"redis commands: {n} jobs with long poll, {n} with SSE, then an idle window")
    polled, polled_s = await counted(redis, sequential("redis-poll", load.polled_job))
    streamed, streamed_s = await counted(redis, sequential("redis-sse", load.streamed_job))
    window = max(polled_s, streamed_s)
    idle, idle_s = await counted(redis, lambda: asyncio.sleep(window))
    idle_rate = idle.total() / idle_s
    rows: list[tuple[object, ...]] = []
    for label, counts, seconds in (("long poll", polled, polled_s), ("SSE", streamed, streamed_s)):
        total = counts.total() / n
        net = (counts.total() - idle_rate * seconds) / n
        rows.append((f"submit + {label}", n, f"{seconds:.1f}", f"{total:.1f}", f"{net:.1f}"))
    rows.append(("idle (no traffic), per second", "—", f"{idle_s:.1f}", f"{idle_rate:.1f}", "—"))
    names = [k for k, _ in (polled + streamed).most_common(TOP)]
    lines = [
        *table(("client", "jobs", "seconds", "commands per job", "less idle rate"), rows),
        "",
        "Counts are `INFO commandstats` calls: a command run inside a Lua script counts, "
        "and so does the `EVALSHA` that ran it. Each job streams a 200-token answer. Top "
        "commands:",
        "",
        *table(
            ("command", "per job, long poll", "per job, SSE", "idle, per second"),
            [
                (
                    f"`{k}`",
                    f"{polled[k] / n:.1f}",
                    f"{streamed[k] / n:.1f}",
                    f"{idle[k] / idle_s:.2f}",
                )
                for k in names
            ],
        ),
    ]
    figure = "5 Redis commands per job"
    goals = [
        Goal(
            figure,
            f"long poll ≤ {PER_JOB_GOAL:g}/job",
            fmt(polled.total() / n, 1),
            at_most(polled.total() / n, PER_JOB_GOAL),
        ),
        Goal(
            figure,
            f"SSE ≤ {PER_JOB_GOAL:g}/job",
            fmt(streamed.total() / n, 1),
            at_most(streamed.total() / n, PER_JOB_GOAL),
        ),
    ]
    return Part("5. Redis commands per completed job", lines, goals)
