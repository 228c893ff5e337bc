"""Answer tokens reach the job's stream in batches: the first at once, the rest together
(a bounded number of Redis writes however many tokens), held ones written by a timer when
no token comes to carry them, and every batch concatenating back to the answer."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from redis.asyncio import Redis

from shared.jobstore import JobStore
from shared.redis_keys import Keys
from shared.schemas.jobs import JobCreate
from workers.jobs.resume import Emitter, JobStopped

pytestmark = pytest.mark.integration

TOKENS = [f"word{i} " for i in range(200)]


async def _job(redis: Redis, keys: Keys, job_id: str) -> JobStore:
    store = JobStore(redis, keys, ttl_s=3600, events_max_len=1000)
    submitted = await store.submit(
        job_id=job_id, tenant="acme", request=JobCreate(question="q"), request_id="r"
    )
    assert submitted.job is not None
    return store


async def _deltas(store: JobStore, job_id: str, after: int = 0) -> list[str]:
    events = await store.read_events(job_id, after, block_ms=None)
    return [json.loads(e.data)["delta"] for e in events if e.name == "answer.delta"]


async def test_first_token_is_written_at_once_and_the_rest_in_one_batch(
    redis: Redis, keys: Keys
) -> None:
    """200 tokens inside one batching period: one write for the first token, the other
    199 handed over as a single delta for the job's completion."""
    store = await _job(redis, keys, "job_batch_one")
    emitter = Emitter(SimpleNamespace(jobs=store), "job_batch_one", "", flush_s=3600)  # type: ignore[arg-type]
    await emitter.emit(TOKENS[0])
    assert await _deltas(store, "job_batch_one") == [TOKENS[0]]  # not held back
    for token in TOKENS[1:]:
        await emitter.emit(token)
    assert await _deltas(store, "job_batch_one") == [TOKENS[0]]  # the rest is held
    held = await emitter.pending()
    emitter.close()
    assert [d.delta for d in held] == ["".join(TOKENS[1:])]
    assert emitter.text == "".join(TOKENS)
    assert await emitter.pending() == []  # handed over once


async def test_held_tokens_are_written_by_the_timer_without_another_token(
    redis: Redis, keys: Keys
) -> None:
    """A stream that pauses after a token still shows that token within the period."""
    store = await _job(redis, keys, "job_batch_timer")
    emitter = Emitter(SimpleNamespace(jobs=store), "job_batch_timer", "", flush_s=0.05)  # type: ignore[arg-type]
    await emitter.emit("Rotate ")
    await emitter.emit("the ")
    await emitter.emit("key.")
    seen = await _deltas(store, "job_batch_timer")
    while "".join(seen) != "Rotate the key.":  # blocks until the next write (seq 1 is queued)
        events = await store.read_events("job_batch_timer", 1 + len(seen), block_ms=30_000)
        assert events, "the held tokens were never written"
        seen += [json.loads(e.data)["delta"] for e in events]
    assert seen[0] == "Rotate "
    assert await emitter.pending() == []
    emitter.close()


async def test_a_rerun_with_batching_streams_only_the_rest(redis: Redis, keys: Keys) -> None:
    """What a first attempt wrote (not what it held) is what a re-run skips."""
    store = await _job(redis, keys, "job_batch_rerun")
    first = Emitter(SimpleNamespace(jobs=store), "job_batch_rerun", "", flush_s=3600)  # type: ignore[arg-type]
    for token in ["Rotate ", "the ", "ke"]:
        await first.emit(token)
    first.close()  # the worker died: "the ke" was held, never written
    streamed = "".join(await _deltas(store, "job_batch_rerun"))
    assert streamed == "Rotate "
    second = Emitter(SimpleNamespace(jobs=store), "job_batch_rerun", streamed, flush_s=3600)  # type: ignore[arg-type]
    for token in ["Rotate ", "the ", "key ", "weekly."]:
        await second.emit(token)
    rest = "".join(d.delta for d in await second.pending())
    assert "".join(await _deltas(store, "job_batch_rerun")) + rest == "Rotate the key weekly."


async def test_a_cancelled_job_stops_at_the_next_write(redis: Redis, keys: Keys) -> None:
    """Once cancelled, the next write is refused and the emitter stops the job."""
    store = await _job(redis, keys, "job_batch_cancel")
    emitter = Emitter(SimpleNamespace(jobs=store), "job_batch_cancel", "", flush_s=0.0)  # type: ignore[arg-type]
    await emitter.emit("first ")
    record = await store.get("job_batch_cancel")
    assert record is not None
    await store.cancel(record)
    with pytest.raises(JobStopped):
        await emitter.emit("late")
    with pytest.raises(JobStopped):
        await emitter.pending()
    assert await _deltas(store, "job_batch_cancel") == ["first "]
