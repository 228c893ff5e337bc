"""A worker claiming a job (shared/lua/job_claim.lua, through RagqWorker._claim): it takes
the job's lock once, leaves jobs locked by another worker or deferred alone, counts what it
takes in the queue's drain rate, and meets a dropped connection as Redis being away, never
as a crash (the fault suite once saw workers exit 1 with `worker.crashed WatchError` from
the WATCH-based claim this replaced)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from redis.asyncio import ConnectionPool, Redis

from shared.clients import REDIS_UNAVAILABLE, make_redis
from shared.redis_keys import Keys
from tests.conftest import TEST_REDIS_URL, MakeSettings
from workers.main import WorkerSettings
from workers.runtime import RagqWorker

pytestmark = pytest.mark.integration


@pytest.fixture
async def worker(make_settings: MakeSettings) -> AsyncIterator[RagqWorker]:
    settings = make_settings(lock_ttl_s=7)
    notify = make_redis(settings)
    worker = RagqWorker(**WorkerSettings.for_queue(settings, "interactive"), notify_redis=notify)
    worker._pool = ArqRedis(connection_pool=ConnectionPool.from_url(TEST_REDIS_URL))
    yield worker
    await worker._pool.aclose(close_connection_pool=True)
    await notify.aclose()


async def _drained(redis: Redis, keys: Keys) -> int:
    counters = keys.drain_window("interactive", time.time(), 10)
    return sum(int(v or 0) for v in await redis.mget(counters))


async def test_lua_job_claim(worker: RagqWorker, redis: Redis, keys: Keys) -> None:
    """The first claim returns the job's score and holds its lock for the lock TTL; a
    second claim (another worker's) gets nothing; the drain rate counts the job once."""
    await redis.zadd(worker.queue_name, {"job_a": 1000})
    assert await worker._claim("job_a") == 1000
    assert await worker._claim("job_a") is None
    ttl_ms = await redis.pttl(in_progress_key_prefix + "job_a")
    assert 0 < ttl_ms <= 7000
    assert await _drained(redis, keys) == 1
    await redis.delete(in_progress_key_prefix + "job_a")


async def test_deferred_finished_and_locked_jobs_are_left_alone(
    worker: RagqWorker, redis: Redis, keys: Keys
) -> None:
    """A job deferred into the future, one no longer queued and one another worker holds
    are not claimed, and none of them is counted as drained."""
    later = int(time.time() * 1000) + 60_000
    await redis.zadd(worker.queue_name, {"job_later": later, "job_held": 1000})
    await redis.set(in_progress_key_prefix + "job_held", "1", px=60_000)
    claims = [await worker._claim(j) for j in ("job_later", "job_gone", "job_held")]
    assert claims == [None, None, None]
    assert await redis.exists(in_progress_key_prefix + "job_later") == 0
    assert await _drained(redis, keys) == 0
    await redis.delete(in_progress_key_prefix + "job_held")


async def test_a_connection_lost_while_claiming_is_redis_being_away(
    make_settings: MakeSettings,
) -> None:
    """A claim against a Redis that is not there (a closed port) raises one of the errors
    the worker loop rides out."""
    settings = make_settings()
    notify = make_redis(settings)
    worker = RagqWorker(**WorkerSettings.for_queue(settings, "interactive"), notify_redis=notify)
    worker._pool = ArqRedis(
        connection_pool=ConnectionPool.from_url("redis://127.0.0.1:1/0", socket_timeout=2)
    )
    try:
        with pytest.raises(REDIS_UNAVAILABLE):
            await worker._claim("job_claimed_during_an_outage")
    finally:
        await worker._pool.aclose(close_connection_pool=True)
        await notify.aclose()
