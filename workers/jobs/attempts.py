"""What ended a job's earlier runs: its worker's death, or an orderly interruption.

arq counts every start of a job (`job_try`) and fails it after `RAGQ_MAX_TRIES`, whatever
ended the earlier runs. Counted that way, a job that happens to be running when workers
are killed (a deploy, the OOM killer taking a neighbour, a lost node) spends its tries as
fast as a job that kills its worker itself, and a few unlucky kills fail a healthy job. So
ragq keeps its own account on the job record, and arq's `max_tries` is only a backstop:

- `owner`: the worker running the job now, set when a run starts. A run that ends in order
  unsets it (the worker's shutdown cancelled it), or leaves it naming a worker that still
  lives (Redis went away under it: the same worker runs it again once Redis is back).
- When a job starts again and its `owner` is a worker that no longer lives (no fresh beat,
  its Redis connection gone: `shared/workerliveness.py`), the run before ended with its
  worker's death: `deaths` + 1. Any other re-run was interrupted, and costs nothing here.
- A job that was running when its worker died `RAGQ_MAX_WORKER_DEATHS` (5) times is taken to
  be what kills them (a poison pill: a document or prompt that crashes a native library or
  exhausts memory) and fails with `abandoned`, so it stops taking workers down with it.

Why 5: a healthy job is caught by a worker death only when that death falls on the worker
running it (about 1 in `workers` deaths, for each of its runs), so being caught 5 times in
one job's life takes a kill storm no fleet survives anyway; a poison pill, caught every
time, costs 5 worker restarts (and re-runs of the jobs it shared them with) before it is
stopped. The fault suite (tests/faults/test_worker_kills.py) measures the deaths per job.
"""

from __future__ import annotations

from shared.logging import get_logger
from shared.metrics import JOB_RERUNS
from shared.workerliveness import live_beats
from workers.lifecycle import Runtime

log = get_logger("workers.attempts")


async def deaths_so_far(rt: Runtime, owner: str | None, deaths: int) -> int:
    """The job's worker deaths, counting the run that ended before this one (a re-run's
    record names that run's `owner` and the `deaths` before it)."""
    if owner and owner != rt.worker_id and not await _alive(rt, owner):
        log.warning("job.rerun", cause="worker_died", previous_worker=owner, deaths=deaths + 1)
        JOB_RERUNS.labels(cause="worker_died").inc()
        return deaths + 1
    log.info("job.rerun", cause="interrupted", previous_worker=owner or None, deaths=deaths)
    JOB_RERUNS.labels(cause="interrupted").inc()
    return deaths


async def _alive(rt: Runtime, worker_id: str) -> bool:
    raw = await rt.redis.hget(rt.keys.workers, worker_id)  # type: ignore[misc]
    return bool(await live_beats(rt.redis, [raw], rt.settings.heartbeat_s))


def poison_message(deaths: int) -> str:
    """The `abandoned` error of a job its workers kept dying under."""
    return (
        f"the job was running when its worker died {deaths} times (RAGQ_MAX_WORKER_DEATHS);"
        " it is taken to be what kills them, and is not run again"
    )
