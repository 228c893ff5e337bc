"""The worker entry point: `WorkerSettings` and `run()`, which serves one or both queues.

Each queue gets its own arq worker (own slots, so a batch flood never takes an
interactive slot); both share one process `Runtime` (clients, model, vector store).
"""

from __future__ import annotations

import asyncio
import functools
import signal
import sys
from typing import Any, ClassVar

import uvloop
from arq.connections import RedisSettings

from shared.clients import make_redis
from shared.config import Settings, get_settings
from shared.logging import configure_logging, get_logger
from shared.metrics import JOBS_FINISHED, GaugeRefresher
from shared.queue import json_dumps, json_loads
from shared.redis_keys import QUEUES, Keys
from shared.schemas.jobs import JobError
from workers.jobs import FUNCTIONS
from workers.lifecycle import Runtime, beat, cancel_listener, heartbeat, open_runtime, stop_loops
from workers.metrics import start_exporter
from workers.reembed import Migration, migrate_until_done
from workers.runtime import RagqWorker

log = get_logger("workers.main")


class WorkerSettings:
    """arq settings of a ragq worker (JSON jobs, never pickle)."""

    functions: ClassVar[list[Any]] = FUNCTIONS
    job_serializer = staticmethod(json_dumps)
    job_deserializer = staticmethod(json_loads)
    keep_result = 0  # results live in ragq's job records, not arq's
    allow_abort_jobs = False  # cancel goes through ragq's own channel
    handle_signals = False  # run() handles signals for all of a process's queue workers

    @classmethod
    def for_queue(cls, settings: Settings, queue: str) -> dict[str, Any]:
        """Keyword arguments of `RagqWorker` for one queue."""
        keys = Keys(settings.key_prefix)
        return {
            "functions": cls.functions,
            "queue_name": keys.queue(queue),
            "redis_settings": RedisSettings.from_dsn(settings.redis_url),
            "redis_url": settings.redis_url,
            "redis_timeout_s": settings.redis_timeout_s,
            "job_serializer": cls.job_serializer,
            "job_deserializer": cls.job_deserializer,
            "keep_result": cls.keep_result,
            "allow_abort_jobs": cls.allow_abort_jobs,
            "handle_signals": cls.handle_signals,
            "max_jobs": settings.worker_max_jobs,
            "job_timeout": settings.job_timeout_s,
            "max_tries": settings.max_tries,
            "poll_delay": settings.worker_poll_s,
            "health_check_interval": 60,
            "notify_key": keys.queue_notify(queue) if settings.worker_notify else None,
            "drain_bucket": functools.partial(keys.drain_bucket, queue),
            "drain_ttl_s": settings.drain_window_s + 60,
            "lock_ttl_s": settings.lock_ttl_s,
        }


class WorkerCrashed(Exception):
    """A queue loop ended by itself (an error other than Redis being away): the process
    exits non-zero so that its supervisor restarts it."""


async def serve(
    settings: Settings,
    queues: tuple[str, ...],
    *,
    burst: bool = False,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Run queue workers until `stop` is set (or, with `burst`, until the queues are empty).

    `started` is set once the workers take jobs.
    """
    rt = await open_runtime(settings, queues)
    ctx: dict[str, Any] = {"runtime": rt}
    workers = [
        RagqWorker(
            **WorkerSettings.for_queue(settings, q),
            ctx=ctx,
            burst=burst,
            notify_redis=rt.redis_blocking,
            on_abandoned=_abandoned(rt),
            on_renew=rt.renew_leases,
        )
        for q in queues
    ]
    exporter = await start_exporter(settings, queues)
    gauges = GaugeRefresher(rt.redis, rt.keys, queues).start()
    await beat(rt)
    background = [
        asyncio.create_task(heartbeat(rt), name="ragq-heartbeat"),
        asyncio.create_task(cancel_listener(rt), name="ragq-cancel-listener"),
    ]
    if rt.indexes.previous:  # RAGQ_EMBEDDINGS_MODEL changed: move tenants in the background
        migration = Migration(
            rt.indexes,
            rt.redis,
            rt.keys,
            rt.documents,
            rt.worker_id,
            grace_s=settings.reembed_grace_s,
        )
        background.append(asyncio.create_task(migrate_until_done(migration), name="ragq-reembed"))
    runs = [asyncio.create_task(w.async_run()) for w in workers]
    log.info("worker.started", queues=list(queues), max_jobs=settings.worker_max_jobs)
    if started is not None:
        started.set()
    crash: BaseException | None = None
    try:
        if stop is None:
            await asyncio.gather(*runs)
        else:
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait([stopper, *runs], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            crash = None if burst else _crash(workers, runs, stop)
            await _drain(workers, settings.worker_drain_s)
    finally:
        for w in workers:
            w.stop()  # each loop returns within one poll delay
        await asyncio.wait(runs, timeout=settings.worker_poll_s + 1)
        for task in runs:
            task.cancel()
        jobs = [t for w in workers for t in w.tasks.values()]
        for task in jobs:
            task.cancel()  # shutdown: arq puts these jobs back on the queue
        await asyncio.gather(*runs, *jobs, return_exceptions=True)
        await stop_loops(background)
        await gauges.aclose()
        if exporter is not None:
            exporter.close()
            await exporter.wait_closed()
        for w in workers:
            await w.close()
        await rt.aclose()
        log.info("worker.stopped", crashed=crash is not None)
    if crash is not None:
        raise WorkerCrashed("a queue loop ended without being asked to") from crash


def _crash(
    workers: list[RagqWorker], runs: list[asyncio.Task[None]], stop: asyncio.Event
) -> BaseException | None:
    """The error of a queue loop that ended although nobody asked it to, logged; or None."""
    if stop.is_set():
        return None
    for worker, task in zip(workers, runs, strict=True):
        if task.done():
            error = task.exception() if not task.cancelled() else asyncio.CancelledError()
            crash = error or RuntimeError("the queue loop returned")
            log.error(
                "worker.crashed",
                queue=worker.queue_name,
                error=f"{type(crash).__name__}: {crash}",
                exc_info=error,
            )
            return crash
    return None


async def _drain(workers: list[RagqWorker], grace_s: float) -> None:
    """Stop taking jobs and give running ones `grace_s` seconds to finish."""
    for w in workers:
        w.allow_pick_jobs = False
    running = [t for w in workers for t in w.tasks.values()]
    if running:
        log.info("worker.draining", jobs=len(running), grace_s=grace_s)
        await asyncio.wait(running, timeout=grace_s)


def _abandoned(rt: Runtime) -> Any:
    async def mark_failed(job_id: str) -> None:
        record = await rt.jobs.get(job_id)
        await rt.budgets.refund(record)
        job = await rt.jobs.finish(
            job_id,
            "failed",
            error=JobError(
                type="abandoned",
                message=f"the job was started {rt.settings.max_tries} times (RAGQ_MAX_TRIES)"
                " without finishing",
            ),
        )
        if job is not None:  # an answer job (ingest jobs have no job record)
            JOBS_FINISHED.labels(queue=job.request.priority, status="failed").inc()

    return mark_failed


# what qdrant-client's local mode says when another process holds the folder's lock
_FOLDER_LOCKED = "is already accessed by another instance"


def folder_in_use(settings: Settings) -> str:
    """The line `ragq worker` exits with when its local Qdrant folder is locked."""
    return (
        f"ragq worker: the Qdrant folder {settings.qdrant_path} (RAGQ_QDRANT_PATH) is in use "
        "by another ragq worker or process, and local mode allows one process per folder: "
        "stop the other one, set a different RAGQ_QDRANT_PATH, or run a Qdrant server and "
        "set RAGQ_QDRANT_URL (needed for more than one worker)."
    )


async def _check_redis(settings: Settings) -> None:
    """Raise the client's RedisError unless Redis answers PING within the settings' timeouts.

    Once running, a worker rides out Redis outages; at start-up there is nothing to ride
    out yet, and a wrong RAGQ_REDIS_URL should be said at once, not retried forever.
    """
    redis = make_redis(settings)
    try:
        await redis.ping()
    finally:
        await redis.aclose()


def run(queue: str | None = None) -> None:
    """`ragq worker`: serve one queue, or both when none is named; stops on SIGINT/SIGTERM.

    Redis not answering at start-up raises its RedisError (the CLI says so, exit 3); a
    local Qdrant folder held by another process exits with `folder_in_use`'s line (exit 1).
    """
    settings = get_settings()
    configure_logging(settings.log_level)
    queues = (queue,) if queue else QUEUES

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await _check_redis(settings)
        await serve(settings, queues, stop=stop)

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as the API's
            runner.run(main())
    except WorkerCrashed:
        sys.exit(1)  # worker.crashed said why
    except RuntimeError as exc:
        if settings.embedded_qdrant and _FOLDER_LOCKED in str(exc):
            raise SystemExit(folder_in_use(settings)) from None
        raise
