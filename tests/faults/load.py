"""Load and verification helpers shared by the worker-kill and Redis-restart fault tests:
a paced stream of answer jobs over HTTP, workers on folders of their own, the job logs
read back, and the check of a job's whole event history (no duplicated visible event)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from scripts.harness import POLL_S, Child
from tests.e2e.conftest import TERMINAL, Stack

QUESTIONS = (
    "How do I rotate a signing key?",
    "What does error VLT-4031 mean?",
    "How long is the overlap window?",
    "Who unpins a pinned consumer?",
    "What should I do after the rotation fails?",
)
# temperature above 0: every job runs (no answer cache, no coalescing of identical requests)
TEMPERATURE = 0.5
READ_CONCURRENCY = 16  # event histories read side by side at the end
READY_TIMEOUT_S = 180.0  # a worker's start on a loaded machine (it loads the embedding model)
LOST_AFTER_S = 240.0  # a job not terminal this long after the load is counted as lost


def question(n: int) -> dict[str, Any]:
    """The body of the n-th job of a load."""
    return {"question": QUESTIONS[n % len(QUESTIONS)], "temperature": TEMPERATURE}


def log_events(stack: Stack, name: str) -> list[dict[str, Any]]:
    """The JSON lines of a process's log (a line being written is skipped)."""
    assert stack.logs is not None
    path = stack.logs / f"{name}.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out


def epoch(entry: dict[str, Any]) -> float:
    """A log line's timestamp as epoch seconds."""
    return datetime.fromisoformat(str(entry["timestamp"])).timestamp()


async def poll(
    condition: Callable[[], bool],
    failure: str,
    timeout_s: float,
    *,
    crashed: Callable[[], str | None] = lambda: None,
) -> None:
    """Return once `condition()` holds; it reads another process's state (a log), which
    sends no event to await, so it is polled, bounded. Fails at once when `crashed()`
    says why a process that should be running is not."""
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():
                assert (why := crashed()) is None, why
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        raise AssertionError(f"{failure} within {timeout_s:.0f} s") from None


def exited(stack: Stack, name: str) -> str | None:
    """None while the process `name` runs; else its exit code and last error line."""
    code = stack.procs[name].returncode
    if code is None:
        return None
    errors = [e for e in log_events(stack, name) if e.get("level") == "error"]
    last = errors[-1] if errors else {}
    return f"{name} exited with {code}: {last.get('event')} {last.get('error', '')}"


class Workers:
    """Worker processes that each have a Qdrant folder of their own (local mode allows one
    process per folder), copied from the first worker's once the corpus is indexed, so
    every worker retrieves from the same index."""

    def __init__(self, stack: Stack, folder: Path) -> None:
        self.stack = stack
        self.folder = folder
        self.names: list[str] = []

    def _path(self, name: str) -> Path:
        return self.folder / name

    def started(self, name: str) -> int:
        """How many times the process `name` has said it takes jobs."""
        return sum(e["event"] == "worker.started" for e in log_events(self.stack, name))

    async def start(self, name: str) -> Child:
        """Start (or restart) worker `name` on its folder; return once it takes jobs."""
        before = self.started(name)
        self.stack.env["RAGQ_QDRANT_PATH"] = str(self._path(name))
        child = await self.stack.start_worker(name)
        if name not in self.names:
            self.names.append(name)
        await poll(
            lambda: self.started(name) > before or not child.alive,
            f"{name} did not start",
            READY_TIMEOUT_S,
        )
        assert child.alive, self.stack.log_tails()
        return child

    async def add(self, name: str) -> Child:
        """One more worker, on a copy of the first one's folder (indexed by then)."""
        source = self._path(self.names[0])
        # the first worker has finished indexing: its folder is not written to meanwhile
        await asyncio.to_thread(
            shutil.copytree, source, self._path(name), ignore=shutil.ignore_patterns("*.lock")
        )
        return await self.start(name)

    def running(self, name: str) -> set[str]:
        """Jobs the current process `name` runs: its log's last word on them is that they
        started (not that they completed, were interrupted, stopped or skipped)."""
        entries = log_events(self.stack, name)
        last = max((i for i, e in enumerate(entries) if e["event"] == "worker.started"), default=0)
        state: dict[str, str] = {}
        for e in entries[last:]:
            if str(e["event"]).startswith("job.") and "job_id" in e:
                state[str(e["job_id"])] = str(e["event"])
        return {job_id for job_id, event in state.items() if event == "job.started"}

    def busy(self, name: str, jobs: int) -> bool:
        """Whether the current process `name` runs at least `jobs` jobs."""
        return len(self.running(name)) >= jobs


@dataclass
class Load:
    """A stream of submits: every response counted, every accepted (202) job kept."""

    client: httpx.AsyncClient
    on_accept: Callable[[str], None] | None = None
    accepted: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    last_accept: float = 0.0  # loop time of the latest 202

    @property
    def server_errors(self) -> int:
        """Responses of status 500 and up."""
        return sum(n for status, n in self.statuses.items() if status >= 500)

    async def submit(self, n: int) -> None:
        """Submit the n-th job of the load; record what came back."""
        loop = asyncio.get_running_loop()
        try:
            response = await self.client.post("/v1/jobs", json=question(n))
        except httpx.TransportError:
            self.transport_errors += 1
            return
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        if response.status_code == 202:
            job_id = str(response.json()["id"])
            self.accepted.append(job_id)
            self.last_accept = loop.time()
            if self.on_accept is not None:
                self.on_accept(job_id)

    async def run(self, interval_s: float, until: Callable[[int], bool]) -> None:
        """Submit one job every `interval_s` until `until(jobs submitted)`; a submit does
        not wait for the previous one (clients arrive at a rate, not one after another)."""
        pending: set[asyncio.Task[None]] = set()
        n = 0
        while not until(n):
            task = asyncio.create_task(self.submit(n))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
            await asyncio.sleep(interval_s)  # the arrival rate itself, not a synchronisation
        await asyncio.gather(*pending)


async def terminal(client: httpx.AsyncClient, job_id: str, deadline: float) -> dict[str, Any]:
    """The job once terminal (long polls), or its 404 problem body if it is not known;
    one still not terminal at `deadline` (loop time) is reported as lost, with its status."""
    try:
        async with asyncio.timeout_at(deadline):
            return await _terminal(client, job_id)
    except TimeoutError:  # one last look: it may have ended while others held the reads
        response = await client.get(f"/v1/jobs/{job_id}")
        if response.status_code == 404:
            return {"id": job_id, "status": "not_found", "problem": response.json()}
        job = dict(response.json())
        lost = {**job, "status": f"lost ({job.get('status')})"}
        return job if job.get("status") in TERMINAL else lost


async def _terminal(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    while True:
        response = await client.get(f"/v1/jobs/{job_id}?wait=30")
        if response.status_code == 404:
            return {"id": job_id, "status": "not_found", "problem": response.json()}
        if response.status_code == 200 and response.json()["status"] in TERMINAL:
            return dict(response.json())
        if response.status_code != 200:  # not a final answer (e.g. 503 while Redis restarts)
            await asyncio.sleep(POLL_S)


async def events_of(client: httpx.AsyncClient, job_id: str) -> list[tuple[int, str, Any]]:
    """A job's whole event history, read from the start until the stream ends."""
    out = []
    async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        if source.response.status_code != 200:
            return []
        async for event in source.aiter_sse():
            if event.data:  # not httpx-sse's empty event after a `: ping` comment
                out.append((int(event.id), event.event, json.loads(event.data)))
    return out


@dataclass
class History:
    """What one job's replayed event history shows."""

    job: dict[str, Any]
    events: list[tuple[int, str, Any]]

    @property
    def names(self) -> list[str]:
        """The event names, in order."""
        return [name for _, name, _ in self.events]

    def duplicates(self) -> int:
        """Visible events a client would see twice: an id that does not increase, a second
        event of any kind but `answer.delta` (job.in_progress, retrieval.completed,
        answer.completed, the terminal one), answer text repeated (deltas ≠ the answer)."""
        ids = [seq for seq, _, _ in self.events]
        backwards = sum(b <= a for a, b in itertools.pairwise(ids))
        once = [name for name in self.names if name != "answer.delta"]
        repeated = len(once) - len(set(once))
        deltas = "".join(d["delta"] for _, name, d in self.events if name == "answer.delta")
        answer = (self.job.get("result") or {}).get("answer")
        text_off = int(self.job["status"] == "completed" and deltas != answer)
        return backwards + repeated + text_off

    def repeated(self, name: str) -> int:
        """How many times more than once the event `name` appears."""
        return max(0, self.names.count(name) - 1)

    @property
    def degraded(self) -> bool:
        """A completed job whose answer is degraded (extractive)."""
        return bool((self.job.get("result") or {}).get("degraded"))

    @property
    def lost(self) -> bool:
        """An accepted job its API no longer knows (404)."""
        return bool(self.job["status"] == "not_found")

    @property
    def complete(self) -> bool:
        """A completed job whose history ends with its one job.completed."""
        return self.job["status"] == "completed" and self.names[-1:] == ["job.completed"]


async def histories(client: httpx.AsyncClient, ids: Iterable[str]) -> list[History]:
    """Every job once terminal, with its event history from the start; the jobs not
    terminal within `LOST_AFTER_S` are reported lost."""
    gate = asyncio.Semaphore(READ_CONCURRENCY)
    deadline = asyncio.get_running_loop().time() + LOST_AFTER_S

    async def one(job_id: str) -> History:
        async with gate:
            job = await terminal(client, job_id, deadline)
            return History(job, await events_of(client, job_id))

    return list(await asyncio.gather(*(one(job_id) for job_id in ids)))


def spread(values: list[float]) -> dict[str, float | None]:
    """Median and max, in seconds rounded to 0.1 (None when there are none)."""
    if not values:
        return {"median_s": None, "max_s": None}
    return {"median_s": round(statistics.median(values), 1), "max_s": round(max(values), 1)}
