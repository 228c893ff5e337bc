"""A re-run job (after a worker crash) continues the answer its first attempt streamed,
so clients concatenating deltas still get exactly the final answer."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from redis.asyncio import Redis

from shared.jobstore import JobStore
from shared.redis_keys import Keys
from shared.schemas.jobs import JobCreate
from workers.jobs.answer import JobStopped, _Emitter

pytestmark = pytest.mark.integration


async def _job(redis: Redis, keys: Keys) -> tuple[JobStore, str]:
    store = JobStore(redis, keys, ttl_s=60, events_max_len=1000)
    submitted = await store.submit(
        job_id="job_rerun", tenant="acme", request=JobCreate(question="q"), request_id="r"
    )
    assert submitted.job is not None
    return store, submitted.job.id


async def _deltas(store: JobStore, job_id: str) -> list[str]:
    events = await store.read_events(job_id, 0, block_ms=None)
    return [json.loads(e.data)["delta"] for e in events if e.name == "answer.delta"]


async def _emit_all(emitter: Any, tokens: list[str]) -> None:
    for token in tokens:
        await emitter.emit(token)


async def test_rerun_skips_the_text_already_streamed(redis: Redis, keys: Keys) -> None:
    """The same answer regenerated emits only what the first attempt had not sent."""
    store, job_id = await _job(redis, keys)
    first = _Emitter(SimpleNamespace(jobs=store), job_id, "")  # type: ignore[arg-type]
    await _emit_all(first, ["Rotate ", "the ", "ke"])
    second = _Emitter(SimpleNamespace(jobs=store), job_id, first.text)  # type: ignore[arg-type]
    await _emit_all(second, ["Rotate ", "the ", "key ", "weekly."])
    assert "".join(await _deltas(store, job_id)) == "Rotate the key weekly."
    assert second.text == "Rotate the key weekly."


async def test_rerun_that_diverges_keeps_deltas_equal_to_the_answer(
    redis: Redis, keys: Keys
) -> None:
    """If the regenerated text differs, the answer continues after what was streamed,
    so deltas and answer never disagree."""
    store, job_id = await _job(redis, keys)
    first = _Emitter(SimpleNamespace(jobs=store), job_id, "")  # type: ignore[arg-type]
    await _emit_all(first, ["Alpha ", "beta "])
    second = _Emitter(SimpleNamespace(jobs=store), job_id, first.text)  # type: ignore[arg-type]
    await _emit_all(second, ["Alpha ", "gamma ", "delta."])
    assert "".join(await _deltas(store, job_id)) == second.text
    assert second.text.startswith("Alpha beta ")


async def test_emitting_into_a_cancelled_job_stops_the_job(redis: Redis, keys: Keys) -> None:
    """Once the job is cancelled, the next delta is refused and the job stops."""
    store, job_id = await _job(redis, keys)
    emitter = _Emitter(SimpleNamespace(jobs=store), job_id, "")  # type: ignore[arg-type]
    await store.cancel(job_id, "interactive")
    with pytest.raises(JobStopped):
        await emitter.emit("late token")
    assert await _deltas(store, job_id) == []
