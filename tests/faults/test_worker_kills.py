"""Worker SIGKILLs under load: answer jobs arrive over HTTP at a steady rate, two worker
processes serve them, and workers are SIGKILLed mid-stream (and restarted, as a supervisor
would) while the jobs stream; every job must complete once, with a clean event history.

Jobs arrive at a rate rather than all at once: each kill then lands with jobs in every
stage on the killed worker (retrieving, mid-stream, finishing), and jobs keep arriving
while it is down and restarting, as with real traffic. The stream goes on until both the
job count and the kills are reached, so a slow machine gets more jobs, never a stall.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, auth
from tests.e2e.test_stack import DOC
from tests.faults.conftest import Figures
from tests.faults.load import History, Load, Workers, epoch, histories, log_events, poll, spread

JOBS = 200
KILLS = 4
WORKERS = ("worker1", "worker2")
TOKEN_LATENCY_MS = "60"  # an answer streams for a few seconds: kills land mid-answer
ARRIVAL_S = 0.15  # seconds between submits
IN_FLIGHT_AT_KILL = 3  # a kill waits until its worker runs at least this many jobs
KILL_WAIT_S = 240.0  # bound of each wait for those jobs on a loaded machine


@dataclass(frozen=True)
class Kill:
    """One SIGKILL the test sent."""

    worker: str
    at: float  # epoch seconds, just before the SIGKILL
    running: int  # jobs its log showed running


@dataclass(frozen=True)
class Start:
    """One `job.started` line of a worker's log."""

    worker: str
    at: float
    job_id: str
    attempt: int


async def kill_in_turn(workers: Workers, kills: list[Kill]) -> None:
    """SIGKILL the workers in turn, each once it runs jobs, and restart it at once; the next
    kill waits for the restarted worker, so one worker at most is down at a time."""
    stack = workers.stack
    for k in range(KILLS):
        name = WORKERS[k % len(WORKERS)]
        busy = functools.partial(workers.busy, name, IN_FLIGHT_AT_KILL)
        await poll(busy, f"{name} never ran {IN_FLIGHT_AT_KILL} jobs at once", KILL_WAIT_S)
        running = len(workers.running(name))
        kills.append(Kill(name, time.time(), running))
        stack.procs[name].send_signal(signal.SIGKILL)
        await stack.procs[name].wait()
        await workers.start(name)


def starts(stack: Stack) -> list[Start]:
    """Every `job.started` line of every worker, in time order."""
    out = [
        Start(name, epoch(e), str(e["job_id"]), int(e["attempt"]))
        for name in WORKERS
        for e in log_events(stack, name)
        if e["event"] == "job.started"
    ]
    return sorted(out, key=lambda s: s.at)


def rerun_delays(all_starts: list[Start], kills: list[Kill]) -> list[float]:
    """For every re-run: seconds from the kill of the worker that ran its previous
    attempt to the re-run's start."""
    delays = []
    for rerun in (s for s in all_starts if s.attempt > 1):
        before = [s for s in all_starts if s.job_id == rerun.job_id and s.at < rerun.at]
        if not before:
            continue
        previous = before[-1]
        after = [k.at for k in kills if k.worker == previous.worker and k.at > previous.at]
        if after and after[0] < rerun.at:
            delays.append(rerun.at - after[0])
    return delays


def measured(
    found: list[History], all_starts: list[Start], kills: list[Kill], wall_s: float
) -> dict[str, Any]:
    """The figures of the run."""
    attempts: dict[str, int] = {}
    for s in all_starts:
        attempts[s.job_id] = max(attempts.get(s.job_id, 0), s.attempt)
    statuses = [h.job["status"] for h in found]
    errors = [(h.job.get("error") or {}).get("type") for h in found]
    return {
        "jobs": len(found),
        "workers": len(WORKERS),
        "kills": len(kills),
        "jobs_running_at_kills": [k.running for k in kills],
        "lost": sum(s not in {"completed", "failed", "cancelled"} for s in statuses),
        "failed": statuses.count("failed"),
        "abandoned": errors.count("abandoned"),
        "degraded": sum(h.degraded for h in found),
        "duplicated_events": sum(h.duplicates() for h in found),
        "repeated_job_in_progress": sum(h.repeated("job.in_progress") for h in found),
        "repeated_retrieval_completed": sum(h.repeated("retrieval.completed") for h in found),
        "jobs_rerun": sum(a > 1 for a in attempts.values()),
        # jobs by the attempt they finished on; under a tries budget of N, those past N fail
        "jobs_by_last_attempt": dict(sorted(Counter(attempts.values()).items())),
        "max_attempt": max(attempts.values(), default=0),
        "rerun_delay": spread(rerun_delays(all_starts, kills)),
        "wall_s": round(wall_s, 1),
    }


@pytest.mark.timeout(600)  # a loaded CI machine; each wait inside is bounded too
async def test_every_job_completes_once_across_worker_kills(
    fault_stack: Stack, figures: Figures, tmp_path: Path
) -> None:
    """≥ 200 jobs streamed over two workers through 4 SIGKILLs (each restarted): every job
    completes, none fails, and each history replayed from the start has increasing ids,
    one answer.completed, one job.completed, and deltas that are exactly the answer."""
    began = time.monotonic()
    stack = fault_stack
    await stack.start_llm("--token-latency-ms", TOKEN_LATENCY_MS)
    workers = Workers(stack, tmp_path / "workers")
    await workers.start(WORKERS[0])
    await stack.start_api()
    key = await stack.create_key("acme")
    await stack.index(key, DOC)
    for name in WORKERS[1:]:
        await workers.add(name)
    kills: list[Kill] = []
    async with httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60) as client:
        load = Load(client)
        killer = asyncio.create_task(kill_in_turn(workers, kills))
        await load.run(ARRIVAL_S, lambda n: n >= JOBS and killer.done())
        await killer  # raises if a kill's wait failed
        found = await histories(client, load.accepted)
    figures("worker kills", **measured(found, starts(stack), kills, time.monotonic() - began))
    incomplete = [(h.job["id"], h.job["status"], h.names) for h in found if not h.complete]
    assert load.statuses == {202: len(load.accepted)}, load.statuses
    assert len(found) >= JOBS
    assert len(kills) == KILLS
    assert incomplete == [], stack.log_tails()
    assert [h.job["id"] for h in found if h.duplicates()] == []
