"""arq's Worker with three measured weaknesses removed (see ARQ-NOTES.md, arq pinned 0.28.*).

* Pickup: instead of sleeping `poll_delay` between polls, an idle worker with a free
  slot blocks on the queue's notify list (the API pushes a token per enqueue), so a
  job starts within milliseconds; the poll stays as the fallback for retries,
  deferred jobs and lost tokens. A finishing job wakes a full worker at once.
* Crashes: the in-progress lock gets a short TTL that is renewed while the job runs,
  so a SIGKILLed worker's job is re-run after about one TTL, never while it is alive.
* Redis outages: arq's loop ends at the first Redis error, and its slot accounting leaks
  a slot when Redis fails while a job starts. This loop backs off (workers/outage.py) and
  goes on; a job interrupted by the outage stays queued and runs again when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.asyncio import ConnectionPool, Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from shared.clients import REDIS_UNAVAILABLE
from shared.logging import get_logger
from shared.lua import source
from workers.outage import Outage

log = get_logger("workers.runtime")

AbandonedHook = Callable[[str], Awaitable[None]]
RenewHook = Callable[[list[str]], Awaitable[None]]
DrainBucket = Callable[[float], str]  # epoch seconds → the drain counter of that moment


class RagqWorker(Worker):
    """An arq Worker woken by a notify list, with a short, renewed job lock."""

    def __init__(
        self,
        *args: Any,
        redis_url: str,
        redis_timeout_s: float,
        notify_redis: Redis,
        notify_key: str | None,
        lock_ttl_s: float,
        drain_bucket: DrainBucket,
        drain_ttl_s: int,
        on_abandoned: AbandonedHook | None = None,
        on_renew: RenewHook | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.in_progress_timeout_s = lock_ttl_s  # arq would use max job timeout + 10 s
        self._redis_url = redis_url
        self._redis_timeout_s = redis_timeout_s
        self._notify_redis = notify_redis
        self._notify_key = notify_key
        self._on_abandoned = on_abandoned
        self._on_renew = on_renew
        self._drain_bucket = drain_bucket
        self._drain_ttl_s = drain_ttl_s
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._claim_script: AsyncScript | None = None

    def stop(self) -> None:
        """Make `main()` return at its next turn. Shutdown does not rely on cancelling the
        loop alone: a cancellation that lands in arq's or redis-py's code can be swallowed,
        and the loop then runs on (seen in CI as a worker that never stopped)."""
        self._stopping = True
        self._slot_freed.set()

    async def main(self) -> None:
        """arq's main loop with the sleep between polls replaced by a wake-up wait, riding
        out Redis outages: while Redis is away the loop backs off and tries again, and jobs
        it interrupted stay queued (arq removes a job only when it finishes) to run again.
        Any other error ends the loop: the caller exits non-zero."""
        await self._connect()
        if self._pool is None:  # stopped before Redis ever answered
            return
        self.ctx.setdefault("redis", self.pool)
        if self.on_startup:
            await self.on_startup(self.ctx)
        renewer = asyncio.create_task(self._renew_locks(), name=f"lock-renewer:{self.queue_name}")
        outage = Outage(self.queue_name)
        try:
            while not self._stopping:
                try:
                    await self._poll_iteration()
                except REDIS_UNAVAILABLE as exc:
                    await outage.wait(exc)
                    continue
                outage.over()
                if self.burst:
                    if 0 <= self.max_burst_jobs <= self._jobs_started():
                        await asyncio.gather(*self.tasks.values())
                        return
                    if await self.pool.zcard(self.queue_name) == 0:
                        await asyncio.gather(*self.tasks.values())
                        return
                await self._wait_for_work()
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _connect(self) -> None:
        """arq's Redis client (bytes, with ragq's timeouts, which arq's settings cannot
        give), retried with backoff for as long as Redis does not answer."""
        outage = Outage(self.queue_name)
        while self._pool is None and not self._stopping:
            pool = ArqRedis(
                ConnectionPool.from_url(
                    self._redis_url,
                    socket_timeout=self._redis_timeout_s,
                    socket_connect_timeout=self._redis_timeout_s,
                    health_check_interval=30,
                ),
                job_serializer=self.job_serializer,
                job_deserializer=self.job_deserializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
            try:
                await pool.ping()
            except REDIS_UNAVAILABLE as exc:
                await pool.aclose(close_connection_pool=True)
                await outage.wait(exc)
            else:
                self._pool = pool
        outage.over()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's start_jobs, minus the ids this worker already runs (running jobs stay in
        the queue's sorted set, and re-checking each one costs a round trip), with each
        claim one script (shared/lua/job_claim.lua: arq's WATCH/MULTI check and the drain
        count in one round trip, not five), and with the slot given back when Redis fails
        between taking a slot and starting the job (arq's would stay taken, and a few
        outages would leave the worker with none)."""
        for job_id in [j.decode() for j in job_ids]:
            if job_id in self.tasks:
                continue
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                break
            self.job_counter += 1
            try:
                score = await self._claim(job_id)
            except BaseException:
                self._release_sem_dec_counter_on_complete()
                raise
            if score is None:  # running elsewhere, finished, or deferred meanwhile
                self._release_sem_dec_counter_on_complete()
                continue
            task = asyncio.create_task(self.run_job(job_id, score))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def _claim(self, job_id: str) -> int | None:
        """Take the job's lock unless another worker holds it, and count it in the queue's
        drain rate (from which admission predicts waits); the job's score, or None when it
        is not ours to run now."""
        if self._claim_script is None:
            self._claim_script = self.pool.register_script(source("job_claim"))
        keys = [in_progress_key_prefix + job_id, self.queue_name, self._drain_bucket(time.time())]
        ttl_ms = int(self.in_progress_timeout_s * 1000)
        args: list[str | int] = [job_id, ttl_ms, timestamp_ms(), self._drain_ttl_s]
        score = await self._claim_script(keys=keys, args=args)
        return None if score is None else int(float(score))

    async def run_job(self, job_id: str, score: int) -> None:
        """arq's run_job; when Redis is away at its start or end, the job is left queued
        with its lock lapsing, so it runs again (and resumes) once Redis is back."""
        try:
            await super().run_job(job_id, score)
        except REDIS_UNAVAILABLE as exc:
            log.warning(
                "job.interrupted", job_id=job_id, reason="redis_unavailable", error=str(exc)
            )

    async def _wait_for_work(self) -> None:
        """Return when a job may be waiting: a notify token, a freed slot, or the poll delay.

        Without a notify key this is arq's plain poll (kept for comparison benchmarks).
        """
        if self._notify_key is None:
            await asyncio.sleep(self.poll_delay_s)
            return
        if self.job_counter < self.max_jobs and self.allow_pick_jobs:
            try:
                await self._notify_redis.blpop(  # type: ignore[misc]
                    [self._notify_key],
                    timeout=self.poll_delay_s,  # type: ignore[arg-type]  # Redis >= 6 takes float seconds
                )
            except RedisError as exc:  # the poll keeps working; do not spin on a dead Redis
                log.warning("worker.notify_failed", error=str(exc))
                await asyncio.sleep(self.poll_delay_s)
            return
        self._slot_freed.clear()
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_delay_s):
                await self._slot_freed.wait()

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_freed.set()

    async def _renew_locks(self) -> None:
        """Keep the lock of every job this worker runs alive; a dead worker's locks lapse."""
        ttl_ms = int(self.in_progress_timeout_s * 1000)
        while True:
            await asyncio.sleep(self.in_progress_timeout_s / 3)
            running = [job_id for job_id, task in self.tasks.items() if not task.done()]
            if not running:
                continue
            try:
                async with self.pool.pipeline(transaction=False) as pipe:
                    for job_id in running:
                        pipe.pexpire(in_progress_key_prefix + job_id, ttl_ms)
                    await pipe.execute()
            except RedisError as exc:
                log.warning("worker.lock_renew_failed", error=str(exc), jobs=len(running))
            if self._on_renew is not None:
                await self._on_renew(running)  # the jobs' concurrency leases

    async def close(self) -> None:
        """arq's close, minus its deprecated Redis `close()`; the caller has stopped the jobs."""
        if self._pool is None:
            return
        with contextlib.suppress(RedisError):
            await self.pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)
        self._pool = None

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """arq gave up on a job without running it (expired, too many tries): record it."""
        await super().finish_failed_job(job_id, result_data)
        if self._on_abandoned is not None:
            await self._on_abandoned(job_id)
