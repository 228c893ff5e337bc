"""Real processes: a job's re-runs count its worker's deaths, not its orderly interruptions
(workers/jobs/attempts.py). With `RAGQ_MAX_WORKER_DEATHS=1`, a job whose worker is stopped
(SIGTERM, as a deploy does) runs again and completes, while one whose worker is SIGKILLed
under it is taken for what kills workers and fails `abandoned`, saying why."""

from __future__ import annotations

import json
import signal
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, auth, finished
from tests.e2e.test_leases import _in_progress
from tests.e2e.test_stack import DOC

pytestmark = pytest.mark.e2e


async def _interrupt(stack: Stack, worker: str, how: signal.Signals) -> None:
    stack.procs[worker].send_signal(how)
    await stack.procs[worker].wait()


def _reruns(stack: Stack, worker: str) -> list[dict[str, Any]]:
    """The `job.rerun` lines of a worker's log."""
    lines = (stack.logs / f"{worker}.log").read_text().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in events if e["event"] == "job.rerun"]


@pytest.mark.timeout(300)  # three workers, two lock lapses on a loaded machine
async def test_a_shutdown_costs_a_job_nothing_and_a_worker_death_counts(stack: Stack) -> None:
    stack.env["RAGQ_MAX_WORKER_DEATHS"] = "1"
    await stack.start_llm("--token-latency-ms", "100")
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    await stack.index(key, DOC)
    async with httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60) as client:
        stopped = await _in_progress(client, "How do I rotate a signing key?")
        await _interrupt(stack, "worker", signal.SIGTERM)
        await stack.start_worker("worker2")
        stopped_job = await finished(client, stopped)

        killed = await _in_progress(client, "What does VLT-4031 mean?")
        await _interrupt(stack, "worker2", signal.SIGKILL)
        await stack.start_worker("worker3")
        killed_job = await finished(client, killed)

    assert stopped_job["status"] == "completed", stack.log_tails()
    assert stopped_job["result"]["answer"]
    assert [(r["job_id"], r["cause"]) for r in _reruns(stack, "worker2")] == [
        (stopped, "interrupted")
    ]
    assert killed_job["status"] == "failed", stack.log_tails()
    assert killed_job["error"]["type"] == "abandoned"
    assert "died 1 times (RAGQ_MAX_WORKER_DEATHS)" in killed_job["error"]["message"]
    assert [(r["job_id"], r["cause"]) for r in _reruns(stack, "worker3")] == [
        (killed, "worker_died")
    ]
