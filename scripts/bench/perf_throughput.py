"""Figure 4, submit throughput: `POST /v1/jobs` per second from concurrent clients against one
API process, over raw arq `enqueue_job` per second on the same Redis, and the same client's
ceiling on a trivial endpoint (`GET /healthz`).

The submits go to an API process of their own (`api-submit`: the run's settings with the
admission limits out of the way, `RAGQ_MAX_QUEUE_DEPTH` huge and `RAGQ_MAX_QUEUE_WAIT_S=0`),
while the worker is paused (SIGSTOP), so that the jobs neither run nor are refused; every
one is then cancelled through the API (a queued job's cancel takes it off the queue), and
the worker resumes (SIGCONT).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from scripts.bench.idle import cpu_seconds
from scripts.bench.perf_load import PerfLoad
from scripts.bench.perf_report import Goal, Part, at_least, ratio
from scripts.bench.reportfile import table
from scripts.bench.stack import KEY_PREFIX, Session, log
from scripts.bench.stats import fmt
from scripts.harness import wait_until
from shared.queue import json_dumps

CLIENTS = 8
RATIO_GOAL = 0.5
ARQ_QUEUE = f"{KEY_PREFIX}:perf-arq"  # no worker reads it
SUBMIT_ENV = {"RAGQ_MAX_QUEUE_DEPTH": "100000000", "RAGQ_MAX_QUEUE_WAIT_S": "0"}


@dataclass
class Rate:
    """A closed-loop measure: operations that succeeded and failed in `elapsed_s`, and the
    CPU the load generator and the API process used meanwhile (% of one core)."""

    ok: int
    bad: int
    elapsed_s: float
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0


async def closed_loop(
    clients: int, seconds: float, op: Callable[[], Awaitable[bool]], pids: dict[str, int]
) -> Rate:
    """`clients` tasks, each doing `op` back to back until `seconds` have passed."""
    loop = asyncio.get_running_loop()
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    t0 = loop.time()
    end = t0 + seconds
    counts = [0, 0]

    async def client() -> None:
        while loop.time() < end:
            counts[0 if await op() else 1] += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = loop.time() - t0
    used = {name: 100 * (cpu_seconds(pid) - cpu[name]) / elapsed for name, pid in pids.items()}
    return Rate(counts[0], counts[1], elapsed, used)


async def arq_rates(redis_url: str, seconds: float, pids: dict[str, int]) -> tuple[Rate, Rate]:
    """Raw `enqueue_job` per second from this process: one at a time, then 8 at once."""
    pool: ArqRedis = await create_pool(RedisSettings.from_dsn(redis_url), job_serializer=json_dumps)
    ids: list[str] = []

    async def enqueue() -> bool:
        body = {"question": f"raw arq job {len(ids)}", "max_tokens": 512}
        job = await pool.enqueue_job("perf_noop", body, _queue_name=ARQ_QUEUE)
        if job is not None:
            ids.append(job.job_id)
        return job is not None

    try:
        sequential = await closed_loop(1, seconds, enqueue, pids)
        concurrent = await closed_loop(CLIENTS, seconds, enqueue, pids)
        for start in range(0, len(ids), 1000):
            await pool.delete(*(f"arq:job:{i}" for i in ids[start : start + 1000]))
        await pool.delete(ARQ_QUEUE)
    finally:
        await pool.aclose()
    return sequential, concurrent


async def submit_api(run: Session) -> str:
    """Start the `api-submit` process (the run's settings plus SUBMIT_ENV); its URL."""
    saved = run.stack.env
    run.stack.env = {**saved, **SUBMIT_ENV}
    try:
        return await run.stack.serve("api-submit")
    finally:
        run.stack.env = saved


async def throughput(load: PerfLoad, run: Session, seconds: float) -> Part:
    """Figure 4 (see the module docstring)."""
    url = await submit_api(run)
    worker = run.stack.procs["worker"]
    client = load.client
    jobs: list[str] = []

    async def healthz() -> bool:
        return (await client.get(f"{url}/healthz")).status_code == 200

    async def submit() -> bool:
        body: dict[str, Any] = load.body(load.question())
        r = await client.post(f"{url}/v1/jobs", json=body, headers=load.auth)
        if r.status_code == 202:
            jobs.append(r.json()["id"])
        return r.status_code == 202

    async def cancel_each() -> int:
        done = 0
        while jobs:
            r = await client.post(f"{url}/v1/jobs/{jobs.pop()}/cancel", headers=load.auth)
            done += r.status_code == 200
        return done

    log(f"throughput: worker paused; {CLIENTS} clients x {seconds:g} s per measure")
    pids = {"client": os.getpid(), "api": run.stack.procs["api-submit"].pid}
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        ceiling = await closed_loop(CLIENTS, seconds, healthz, pids)
        api = await closed_loop(CLIENTS, seconds, submit, pids)
        sequential, concurrent = await arq_rates(run.redis_url, seconds, pids)
        submitted = len(jobs)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        cancelled = sum(await asyncio.gather(*(cancel_each() for _ in range(CLIENTS))))
        cancel_s = loop.time() - t0
    finally:
        os.kill(worker.pid, signal.SIGCONT)
        submit_proc = run.stack.procs["api-submit"]
        with contextlib.suppress(ProcessLookupError):
            submit_proc.terminate()
        await submit_proc.wait()
    await ready(load.client, load.api)
    value = ratio(api.per_s, concurrent.per_s)
    lines = table(
        ("measure", "clients", "ok", "refused/failed", "s", "per second", "CPU client", "CPU API"),
        [
            ("`GET /healthz` (the client's ceiling)", CLIENTS, *_cells(ceiling)),
            ("`POST /v1/jobs`", CLIENTS, *_cells(api)),
            ("raw arq `enqueue_job`, sequential", 1, *_cells(sequential)),
            ("raw arq `enqueue_job`, concurrent tasks", CLIENTS, *_cells(concurrent)),
        ],
    )
    lines += [
        "",
        f"Ratio `POST /v1/jobs` / arq concurrent: {fmt(value, 3)} (over arq sequential: "
        f"{fmt(ratio(api.per_s, sequential.per_s), 3)}). Clients: {CLIENTS} asyncio tasks "
        "sharing one `httpx.AsyncClient` (HTTP/1.1 keep-alive) in the load generator; arq from "
        "the same process (`arq.create_pool`, JSON serializer, a queue no worker reads, its "
        "keys deleted after). CPU: each process's user + system time over the measure's wall "
        "time (100 % = one core; a client near 100 % would be the limit). The submits went "
        "to a second API process (`api-submit`, "
        "`RAGQ_MAX_QUEUE_DEPTH=100000000`, `RAGQ_MAX_QUEUE_WAIT_S=0`, else the run's settings) "
        "with the worker paused (SIGSTOP) so that no job ran or was shed; the "
        f"{submitted} submitted jobs were then cancelled through that API "
        f"({cancelled} cancels in {cancel_s:.1f} s), and the worker resumed.",
    ]
    goal = Goal(
        "4 submit throughput",
        f"`POST /v1/jobs`/s ÷ arq `enqueue_job`/s (8 tasks) ≥ {RATIO_GOAL}",
        f"{api.per_s:.0f} / {concurrent.per_s:.0f} = {fmt(value, 3)} "
        f"(client ceiling {ceiling.per_s:.0f}/s)",
        at_least(value, RATIO_GOAL),
    )
    return Part("4. Submit throughput", lines, [goal])


def _cells(rate: Rate) -> tuple[object, ...]:
    cpu = [f"{rate.cpu.get(name, math.nan):.0f} %" for name in ("client", "api")]
    return rate.ok, rate.bad, f"{rate.elapsed_s:.1f}", f"{rate.per_s:.0f}", *cpu


async def ready(client: httpx.AsyncClient, api: str) -> None:
    """Wait until the API is ready again (a live worker)."""

    async def check() -> bool:
        return (await client.get(f"{api}/readyz")).status_code == 200

    await wait_until(check, timeout_s=60, failure="the API was not ready again")
