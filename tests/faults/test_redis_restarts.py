"""Redis goes away mid-load and comes back: answer jobs arrive over HTTP at a steady rate,
each streamed by the project's own client, while the suite's Redis (AOF everysec) is shut
down, SIGKILLed, or SIGKILLed with the last second of its AOF cut off (a machine crash; a
process kill alone loses nothing, as the kernel still holds what Redis wrote).

A submit answered 202 is an accepted job: none may be lost across a SHUTDOWN. After a kill
or a crash the tests measure how many were lost and check that every client learns what
became of its job (completed, a 404 problem, a 422 for a resume past what survived), never
waiting on a stream or a poll that does not end."""

from __future__ import annotations

import asyncio
import functools
import shutil
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.harness import POLL_S
from scripts.harness.redisproc import OwnRedis
from shared.client import AsyncClient, RagqError
from shared.events import AnswerDelta, JobCompleted
from tests.e2e.conftest import Stack, auth
from tests.e2e.test_stack import DOC
from tests.faults.conftest import Figures
from tests.faults.load import History, Load, Workers, exited, histories, log_events, poll

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")

TOKEN_LATENCY_MS = "40"  # answers stream for a second or two: the outage lands mid-answer
ARRIVAL_S = 0.1  # seconds between submits
BEFORE = 30  # jobs accepted before Redis goes away
AFTER = 30  # jobs accepted after it is back
RUNNING_AT_OUTAGE = 3  # the outage waits until the worker runs at least this many jobs
WAIT_S = 180.0  # bound of each wait on another process (a loaded machine)
LOST_S = 1.0  # seconds of writes a machine crash loses with appendfsync everysec
STREAM_BOUND_S = 300.0  # a stream still open this long after the load is a hang


@dataclass
class Streams:
    """One stream per accepted job, read with `shared.client` (which resumes a dropped
    stream with Last-Event-ID and waits out 503s): how each ended."""

    ragq: AsyncClient
    tasks: dict[str, asyncio.Task[tuple[str, str]]] = field(default_factory=dict)

    def follow(self, job_id: str) -> None:
        """Start reading the job's events."""
        self.tasks[job_id] = asyncio.create_task(self._read(job_id))

    async def _read(self, job_id: str) -> tuple[str, str]:
        """("completed", the deltas' text), or ("ErrorClass", message) when the client
        raised, or ("hang", "") when the stream did not end within the bound."""
        text: list[str] = []
        try:
            async with asyncio.timeout(STREAM_BOUND_S):
                async for event in self.ragq.stream(job_id):
                    if isinstance(event, AnswerDelta):
                        text.append(event.delta)
                    elif isinstance(event, JobCompleted):
                        return "completed", "".join(text)
                    elif event.event in {"job.failed", "job.cancelled"}:
                        return event.event, ""
        except TimeoutError:
            return "hang", ""
        except RagqError as exc:
            return type(exc).__name__, str(exc)
        return "ended without a terminal event", ""

    async def outcomes(self) -> dict[str, tuple[str, str]]:
        """How every stream ended, by job id."""
        ended = await asyncio.gather(*self.tasks.values())
        return dict(zip(self.tasks, ended, strict=True))


@dataclass
class Run:
    """What one outage under load gave."""

    load: Load
    found: list[History]
    streams: dict[str, tuple[str, str]]
    outage_s: float
    recover_s: float
    figures: dict[str, Any]


def worker_noticed(stack: Stack) -> int:
    """Times the worker has said Redis is unavailable."""
    return sum(e["event"] == "worker.redis_unavailable" for e in log_events(stack, "worker"))


async def outage_under_load(
    stack: Stack, redis: OwnRedis, stop: Callable[[], Awaitable[None]], folder: Path
) -> Run:
    """Load the stack, `stop` Redis once jobs stream, keep it away until the worker's loop
    and every job it was running have met the outage (each logged it), start it again, load
    on until `AFTER` more jobs are accepted; then read every job back."""
    began = time.monotonic()
    await stack.start_llm("--token-latency-ms", TOKEN_LATENCY_MS)
    workers = Workers(stack, folder)
    await workers.start("worker")
    await stack.start_api()
    key = await stack.create_key("acme")
    await stack.index(key, DOC)
    loop = asyncio.get_running_loop()
    worker_down = functools.partial(exited, stack, "worker")
    async with (
        httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60) as client,
        AsyncClient(stack.url, api_key=key, timeout=60) as ragq,
    ):
        streams = Streams(ragq)
        load = Load(client, on_accept=streams.follow)
        done = asyncio.Event()
        loading = asyncio.create_task(load.run(ARRIVAL_S, lambda n: done.is_set()))
        try:
            await poll(
                lambda: len(load.accepted) >= BEFORE and workers.busy("worker", RUNNING_AT_OUTAGE),
                f"the worker never ran {RUNNING_AT_OUTAGE} jobs at once",
                WAIT_S,
                crashed=worker_down,
            )
            noticed = worker_noticed(stack)
            at_stop = workers.running("worker")
            down_at = loop.time()
            await stop()
            await poll(  # a quicker return is absorbed by the Redis clients' own retries
                lambda: worker_noticed(stack) > noticed and not at_stop & workers.running("worker"),
                "the worker's loop and running jobs never met the outage",
                WAIT_S,
                crashed=worker_down,
            )
            await redis.start()
            up_at = loop.time()
            await poll(
                lambda: load.last_accept > up_at,
                "no submit was accepted again",
                WAIT_S,
                crashed=worker_down,
            )
            recover_s = load.last_accept - up_at
            wanted = len(load.accepted) + AFTER
            await poll(
                lambda: len(load.accepted) >= wanted,
                "submits stopped being accepted",
                WAIT_S,
                crashed=worker_down,
            )
            done.set()
            await loading
            found = await histories(client, load.accepted)
            ended = await streams.outcomes()
        finally:  # a failed wait above: stop what still runs before the clients close
            done.set()
            running = [loading, *streams.tasks.values()]
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
    run = Run(load, found, ended, up_at - down_at, recover_s, {})
    run.figures = measured(run, stack, time.monotonic() - began)
    return run


def measured(run: Run, stack: Stack, wall_s: float) -> dict[str, Any]:
    """The figures of one outage."""
    statuses = Counter(h.job["status"] for h in run.found)
    return {
        "accepted": len(run.found),
        "completed": statuses["completed"],
        "lost": len(run.found) - sum(statuses[s] for s in ("completed", "failed", "cancelled")),
        "lost_as_404": statuses["not_found"],
        "failed": statuses["failed"],
        "degraded": sum(h.degraded for h in run.found),
        "duplicated_events": sum(h.duplicates() for h in run.found),
        "submit_statuses": dict(sorted(run.load.statuses.items())),
        "submit_5xx": run.load.server_errors,
        "submit_transport_errors": run.load.transport_errors,
        "stream_outcomes": dict(Counter(kind for kind, _ in run.streams.values())),
        "outage_s": round(run.outage_s, 1),
        "recover_s": round(run.recover_s, 1),
        "worker_exited": stack.procs["worker"].returncode is not None,
        "wall_s": round(wall_s, 1),
    }


class AofTail:
    """The size of Redis's append-only file, sampled while it runs, so that a SIGKILL can be
    followed by losing what Redis wrote in its last second: what a machine crash loses with
    `appendfsync everysec` (a process kill alone loses nothing: the kernel holds the file)."""

    def __init__(self, redis: OwnRedis) -> None:
        folder = redis.folder / "appendonlydir"
        manifest = (folder / "appendonly.aof.manifest").read_text().split()
        self.path = folder / manifest[manifest.index("file", -8) + 1]  # the last: incr
        self.sizes: list[tuple[float, int]] = []
        self.dropped = 0

    async def sample(self) -> None:
        """Note the file's size every poll, until cancelled (a record, not a wait)."""
        loop = asyncio.get_running_loop()
        while True:
            self.sizes.append((loop.time(), self.path.stat().st_size))
            await asyncio.sleep(POLL_S)

    def cut(self, at: float) -> None:
        """Truncate the file to its size `LOST_S` before `at` (Redis stopped)."""
        size = max(s for t, s in self.sizes if t <= at - LOST_S)
        self.dropped = self.path.stat().st_size - size
        with self.path.open("r+b") as aof:
            aof.truncate(size)


def streamed_text_off(run: Run) -> list[str]:
    """Jobs whose stream completed with text other than the job's answer."""
    answers = {h.job["id"]: (h.job.get("result") or {}).get("answer") for h in run.found}
    return [
        job_id
        for job_id, (kind, text) in run.streams.items()
        if kind == "completed" and text != answers[job_id]
    ]


@pytest.mark.timeout(600)  # a loaded CI machine; each wait inside is bounded too
async def test_no_accepted_job_is_lost_across_a_redis_shutdown(
    fault_stack: Stack, own_redis: OwnRedis, figures: Figures, tmp_path: Path
) -> None:
    """Redis SHUTDOWN mid-load, then started again: every job that got a 202 completes,
    with a clean history, its stream ends with the answer, and submits during the outage
    are told 503 (try again), never another 5xx."""
    run = await outage_under_load(fault_stack, own_redis, own_redis.shutdown, tmp_path / "w")
    figures("redis shutdown", **run.figures)
    incomplete = [(h.job["id"], h.job["status"], h.names) for h in run.found if not h.complete]
    assert incomplete == [], fault_stack.log_tails()
    assert [h.job["id"] for h in run.found if h.duplicates()] == []
    assert {kind for kind, _ in run.streams.values()} == {"completed"}, run.streams
    assert streamed_text_off(run) == []
    assert {s for s in run.load.statuses if s >= 500} <= {503}
    assert run.figures["worker_exited"] is False


@pytest.mark.timeout(600)
async def test_a_redis_kill_loses_at_most_the_last_writes_and_says_so(
    fault_stack: Stack, own_redis: OwnRedis, figures: Figures, tmp_path: Path
) -> None:
    """Redis SIGKILLed mid-load, then started again from its AOF: an accepted job either
    completes (clean history, its stream ends with the answer) or is unknown, which poll
    and stream both say with a 404; nothing is left hanging."""
    run = await outage_under_load(fault_stack, own_redis, own_redis.kill, tmp_path / "w")
    figures("redis kill", **run.figures)
    unclear = [(h.job["id"], h.job["status"]) for h in run.found if not (h.complete or h.lost)]
    assert unclear == [], fault_stack.log_tails()
    assert [h.job["id"] for h in run.found if h.duplicates()] == []
    assert all(h.job["problem"]["type"].endswith("/not-found") for h in run.found if h.lost)
    assert streamed_text_off(run) == []
    assert {kind for kind, _ in run.streams.values()} <= {"completed", "NotFound"}, run.streams
    assert {s for s in run.load.statuses if s >= 500} <= {503}
    assert run.figures["worker_exited"] is False


@pytest.mark.timeout(600)
async def test_a_machine_crash_loses_the_last_second_and_clients_learn_it(
    fault_stack: Stack, own_redis: OwnRedis, figures: Figures, tmp_path: Path
) -> None:
    """Redis SIGKILLed mid-load and its AOF cut back by one second (a machine crash), then
    started again: jobs accepted in that second are unknown (404 to poll and stream),
    every other accepted job completes; nothing is left hanging."""
    tail = AofTail(own_redis)
    sampler = asyncio.create_task(tail.sample())

    async def crash() -> None:
        await own_redis.kill()
        sampler.cancel()
        tail.cut(asyncio.get_running_loop().time())

    run = await outage_under_load(fault_stack, own_redis, crash, tmp_path / "w")
    figures("redis crash (last second of AOF lost)", **run.figures, aof_bytes_lost=tail.dropped)
    unclear = [(h.job["id"], h.job["status"]) for h in run.found if not (h.complete or h.lost)]
    assert unclear == [], fault_stack.log_tails()
    assert [h.job["id"] for h in run.found if h.duplicates()] == []
    assert all(h.job["problem"]["type"].endswith("/not-found") for h in run.found if h.lost)
    assert streamed_text_off(run) == []
    # a stream resumed past the events that survived is told so (422), not left waiting
    kinds = {kind for kind, _ in run.streams.values()}
    assert kinds <= {"completed", "NotFound", "InvalidRequest"}, run.streams
    assert run.figures["worker_exited"] is False
