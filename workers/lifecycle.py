"""The worker process's clients and background duties: start-up, heartbeat, cancel listener.

One `Runtime` per process, shared by its queue workers through arq's `ctx`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.answercache import AnswerCache
from shared.budget import Budgets
from shared.clients import make_redis
from shared.config import Settings
from shared.documents import DocumentStore
from shared.heartbeat import LLMState, QdrantState, WorkerHeartbeat
from shared.jobstore import JobStore
from shared.logging import get_logger
from shared.pricing import PriceTable
from shared.redis_keys import Keys
from shared.tiers import DEFAULT_TIER, llm_targets
from workers.rag.embedcache import CachedEmbedder
from workers.rag.embeddings import Embedder, build_embedder
from workers.rag.indexes import Index, Indexes
from workers.rag.llm import LLMClient
from workers.rag.retrieval import Retriever
from workers.rag.vectorstore import ChunkStore

log = get_logger("workers.lifecycle")
LISTEN_SLICE_S = 5.0  # below the blocking pool's socket timeout
STOP_EVERY_S = 1.0  # how long `stop_loops` waits before cancelling a loop again
STOP_ATTEMPTS = 10


@dataclass(slots=True)
class Runtime:
    """Everything a job needs, opened once per worker process."""

    settings: Settings
    keys: Keys
    redis: Redis
    redis_blocking: Redis
    beat_redis: Redis  # one connection, whose life is the process's (see `beat`)
    jobs: JobStore
    documents: DocumentStore
    indexes: Indexes  # the configured embedding model's collection, and any tenants are still on
    retriever: Retriever
    llm: LLMClient | None
    executor: ThreadPoolExecutor  # CPU-bound work (chunking, embedding) stays off the loop
    worker_id: str
    queues: tuple[str, ...]
    budgets: Budgets
    answers: AnswerCache
    prices: PriceTable
    fallback: LLMClient | None  # the `fallback_model` budget policy's endpoint
    tiers: dict[str, LLMClient] = field(default_factory=dict)  # RAGQ_LLM_TIERS; `llm` is default
    running: dict[str, asyncio.Task[object]] = field(default_factory=dict)
    leases: dict[str, str] = field(default_factory=dict)  # running job id → its lease set
    cancelled: set[str] = field(default_factory=set)
    qdrant_state: QdrantState = "ok"  # as the last beat found them
    llm_state: LLMState = "not_configured"

    def llm_for(self, tier: str) -> LLMClient | None:
        """The client of a key's tier: its own endpoints and model, else the default tier's."""
        return self.tiers.get(tier, self.llm)

    async def renew_leases(self, job_ids: list[str]) -> None:
        """Keep the concurrency leases of these running jobs alive for one more lock TTL."""
        held = {j: self.leases[j] for j in job_ids if j in self.leases}
        try:
            await self.jobs.renew_leases(held, int(self.settings.lock_ttl_s * 1000))
        except RedisError as exc:
            log.warning("worker.lease_renew_failed", error=str(exc))

    async def aclose(self) -> None:
        """Close every client, in reverse order of opening."""
        with contextlib.suppress(RedisError):
            await self.redis.hdel(self.keys.workers, self.worker_id)  # type: ignore[misc]
        if self.llm is not None:
            await self.llm.aclose()
        if self.fallback is not None:
            await self.fallback.aclose()
        for client in self.tiers.values():
            await client.aclose()
        await self.indexes.aclose()
        await self.redis.aclose()
        await self.redis_blocking.aclose()
        await self.beat_redis.aclose()
        self.executor.shutdown(wait=False, cancel_futures=True)


async def open_runtime(settings: Settings, queues: tuple[str, ...]) -> Runtime:
    """Open the process's clients (Redis, embedder, vector store, LLM)."""
    keys = Keys(settings.key_prefix)
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    redis = make_redis(settings)
    redis_blocking = make_redis(settings, blocking=True)
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ragq-cpu")
    embedder = await _embedder(settings, executor, redis, keys)
    store = await ChunkStore.open(settings, dim=embedder.dim)
    indexes = Indexes(redis, keys, Index(settings.embeddings_model, embedder, store))

    async def open_previous(model: str) -> Index:
        """Another model tenants are on: its embedder and collection (same Qdrant client)."""
        other = settings.model_copy(update={"embeddings_model": model})
        previous = await _embedder(other, executor, redis, keys)
        return Index(model, previous, await store.sibling(other, dim=previous.dim))

    await indexes.start(open_previous)
    documents = DocumentStore(redis, keys)
    runtime = Runtime(
        settings=settings,
        keys=keys,
        redis=redis,
        redis_blocking=redis_blocking,
        beat_redis=make_redis(settings, max_connections=1, client_name=beat_client_name(worker_id)),
        jobs=JobStore(
            redis, keys, ttl_s=settings.result_ttl_s, events_max_len=settings.events_max_len
        ),
        documents=documents,
        indexes=indexes,
        retriever=Retriever.from_settings(settings, indexes, documents),
        llm=LLMClient(settings, redis=redis, keys=keys) if settings.llm_base_urls else None,
        budgets=Budgets(redis, keys, service_cap_usd=settings.daily_budget_usd),
        answers=AnswerCache(redis, keys, ttl_s=settings.answer_cache_ttl_s),
        prices=PriceTable(settings),
        fallback=_fallback_client(settings, redis, keys),
        tiers={
            name: LLMClient(
                settings, redis=redis, keys=keys, base_urls=list(t.base_urls), model=t.model
            )
            for name, t in llm_targets(settings).items()
            if name != DEFAULT_TIER and t.base_urls
        },
        executor=executor,
        worker_id=worker_id,
        queues=queues,
    )
    log.info(
        "worker.runtime_opened",
        embedder=embedder.name,
        dim=embedder.dim,
        previous_models=[index.model for index in indexes.previous],
        qdrant="local" if settings.embedded_qdrant else "server",
        llm="configured" if runtime.llm else "none",
        tiers=sorted(runtime.tiers),
    )
    return runtime


async def _embedder(
    settings: Settings, executor: ThreadPoolExecutor, redis: Redis, keys: Keys
) -> Embedder:
    """The settings' embedder, behind the Redis embedding cache unless that is off."""
    embedder: Embedder = await build_embedder(settings, executor)
    if settings.embedding_cache_ttl_s:
        embedder = CachedEmbedder(embedder, redis, keys, ttl_s=settings.embedding_cache_ttl_s)
    return embedder


def _fallback_client(settings: Settings, redis: Redis, keys: Keys) -> LLMClient | None:
    """The cheaper endpoint of the `fallback_model` policy (the main endpoints by default)."""
    if settings.budget_policy != "fallback_model" or not settings.fallback_llm_model:
        return None
    urls = settings.fallback_llm_base_urls or settings.llm_base_urls
    if not urls:
        return None
    return LLMClient(
        settings, redis=redis, keys=keys, base_urls=urls, model=settings.fallback_llm_model
    )


def beat_client_name(worker_id: str) -> str:
    """The name of the connection a worker beats on (readiness checks it is still there)."""
    return f"ragq-worker:{worker_id}"


async def beat(rt: Runtime) -> bool:
    """Tell readiness checks that this worker lives, and how its dependencies look; False
    when Redis could not be told.

    The beat names the Redis connection it was written on (`client_id`; one connection
    kept for the purpose, named `client_name`): when the process dies, Redis
    drops that connection at once, and readiness stops counting the worker then, not when
    its last beat grows old.
    """
    rt.qdrant_state = "ok" if await rt.indexes.target.store.ping() else "error"
    try:
        if rt.llm is None:
            rt.llm_state = "not_configured"
        # every breaker open: the answers already degrade, and pinging would not change that
        elif await rt.llm.state() == "degraded":
            rt.llm_state = "degraded"
        else:
            rt.llm_state = "ok" if await rt.llm.ping() else "degraded"
        beat = WorkerHeartbeat(
            ts=time.time(),
            queues=list(rt.queues),
            running=len(rt.running),
            slots=rt.settings.worker_max_jobs,
            client_id=await rt.beat_redis.client_id(),
            client_name=beat_client_name(rt.worker_id),
            qdrant=rt.qdrant_state,
            llm=rt.llm_state,
        )
        await rt.beat_redis.hset(  # type: ignore[misc]
            rt.keys.workers, rt.worker_id, beat.model_dump_json()
        )
    except RedisError as exc:
        log.warning("worker.heartbeat_failed", error=str(exc))
        return False
    return True


async def heartbeat(rt: Runtime) -> None:
    """Beat every `heartbeat_s` seconds; after a failed beat, again soon (readiness counts
    this worker again as soon as Redis is back)."""
    ok = True
    while True:
        await asyncio.sleep(rt.settings.heartbeat_s if ok else min(rt.settings.heartbeat_s, 0.5))
        ok = await beat(rt)


async def cancel_listener(rt: Runtime) -> None:
    """Stop a running job within moments of its cancel request (one subscription per process)."""
    while True:
        try:
            pubsub = rt.redis_blocking.pubsub(ignore_subscribe_messages=True)
            async with pubsub:
                await pubsub.subscribe(rt.keys.cancel_channel)
                while True:
                    # a bounded wait keeps the socket inside its read timeout when idle
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=LISTEN_SLICE_S
                    )
                    if message is None:
                        continue
                    job_id = message.get("data")
                    task = rt.running.get(job_id) if isinstance(job_id, str) else None
                    if task is not None and not task.done():
                        assert isinstance(job_id, str)
                        rt.cancelled.add(job_id)
                        task.cancel()
                        log.info("job.cancel_delivered", job_id=job_id)
        except RedisError as exc:
            log.warning("worker.cancel_listener_failed", error=str(exc))
            await asyncio.sleep(1)


async def stop_loops(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the background loops and wait for them, cancelling again those still running.
    A cancel that lands inside a redis-py call can be swallowed — turned into a redis
    `TimeoutError`, which the loop takes for a failed round trip — and a loop cancelled
    once would run on, holding the worker's shutdown forever (seen in CI: the heartbeat)."""
    for _ in range(STOP_ATTEMPTS):
        running = [t for t in tasks if not t.done()]
        if not running:
            break
        for task in running:
            task.cancel()
        await asyncio.wait(running, timeout=STOP_EVERY_S)
    else:
        log.error("worker.loops_not_stopped", loops=[t.get_name() for t in tasks if not t.done()])
    for task in tasks:
        if task.done() and not task.cancelled() and (error := task.exception()) is not None:
            log.error("worker.loop_failed", loop=task.get_name(), error=repr(error))
