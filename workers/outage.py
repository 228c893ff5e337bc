"""Riding out a Redis outage: the backoff of a worker's loop while Redis is away, and what
a job raises when Redis went away under it (workers/runtime.py, ARCHITECTURE.md)."""

from __future__ import annotations

import asyncio
import random

from arq.worker import Retry

from shared.logging import get_logger

log = get_logger("workers.runtime")

OUTAGE_BACKOFF_S = (0.1, 5.0)  # first and longest wait between tries while Redis is away
RERUN_DEFER_MAX_S = 5  # the longest a job interrupted by a Redis outage waits to run again


def interrupted(exc: BaseException, job_try: int) -> Retry:
    """What a job raises when Redis went away under it: not a failure. arq puts it back
    (or, if Redis is still away, leaves it queued with its lock lapsing) and it runs again,
    a little later with each try."""
    log.warning("job.interrupted", reason="redis_unavailable", error=str(exc))
    return Retry(defer=min(job_try, RERUN_DEFER_MAX_S))


class Outage:
    """Backoff (full jitter, doubling) while Redis is away, with one log line when it goes
    and one when it is back, not one per try."""

    def __init__(self, queue: str) -> None:
        self._queue = queue
        self._tries = 0
        self._since = 0.0

    async def wait(self, exc: BaseException) -> None:
        loop = asyncio.get_running_loop()
        if self._tries == 0:
            self._since = loop.time()
            log.warning("worker.redis_unavailable", queue=self._queue, error=str(exc))
        self._tries += 1
        first, longest = OUTAGE_BACKOFF_S
        await asyncio.sleep(random.uniform(0, min(longest, first * 2**self._tries)))

    def over(self) -> None:
        if self._tries:
            down_s = asyncio.get_running_loop().time() - self._since
            log.info("worker.redis_recovered", queue=self._queue, down_s=round(down_s, 1))
            self._tries = 0
