"""A worker claiming a job when Redis drops its connection: an outage to ride out, never a
crash (the fault suite saw workers exit 1 with `worker.crashed WatchError` on about one
Redis restart in four, from this)."""

from __future__ import annotations

from typing import Any

import pytest
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline

from shared.clients import REDIS_UNAVAILABLE, make_redis
from tests.conftest import TEST_REDIS_URL, MakeSettings
from workers.main import WorkerSettings
from workers.runtime import RagqWorker

pytestmark = pytest.mark.integration


async def test_a_connection_lost_while_claiming_is_redis_being_away(
    make_settings: MakeSettings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim's connection is killed (CLIENT KILL, as a Redis restart does) right after
    its WATCH: the claim raises one of the errors the worker loop rides out."""
    settings = make_settings()
    notify = make_redis(settings)
    worker = RagqWorker(**WorkerSettings.for_queue(settings, "interactive"), notify_redis=notify)
    worker._pool = ArqRedis(connection_pool=ConnectionPool.from_url(TEST_REDIS_URL))
    watch = Pipeline.watch

    async def watch_then_lose_the_connection(pipe: Pipeline, *names: Any) -> Any:
        done = await watch(pipe, *names)
        await redis.execute_command("CLIENT", "KILL", "ID", await pipe.client_id())
        return done

    monkeypatch.setattr(Pipeline, "watch", watch_then_lose_the_connection)
    try:
        with pytest.raises(REDIS_UNAVAILABLE):
            await worker._claim("job_claimed_during_an_outage")
    finally:
        await worker._pool.aclose(close_connection_pool=True)
        await notify.aclose()
