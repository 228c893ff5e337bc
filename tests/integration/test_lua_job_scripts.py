"""Each job, queue, budget and coalescing script (shared/lua/) run once against the real
Redis through its wrapper, with what it returned and wrote."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from shared.admission import Admission
from shared.budget import Budgets
from shared.events import AnswerDelta, JobCompleted
from shared.jobstore import JobStore
from shared.queue import Enqueuer
from shared.redis_keys import Keys
from shared.schemas.jobs import JobCreate, JobError, JobResult

pytestmark = pytest.mark.integration

QUESTION = JobCreate(question="Where is the key?")


def _store(redis: Redis, keys: Keys) -> JobStore:
    return JobStore(redis, keys, ttl_s=3600, events_max_len=100)


async def _submit(store: JobStore, job_id: str, **admission: object) -> str:
    submitted = await store.submit(
        job_id=job_id,
        tenant="acme",
        request=QUESTION,
        request_id="req",
        admission=Admission(**admission),  # type: ignore[arg-type]
    )
    return submitted.outcome


async def test_lua_job_submit(redis: Redis, keys: Keys) -> None:
    """A submit records the job, announces it and queues it; a full queue refuses the next
    one with a Retry-After from the drain counters, writing nothing."""
    store = _store(redis, keys)
    assert await _submit(store, "job_a") == "ok"
    record = await store.get("job_a")
    assert record is not None
    assert (record.status, record.seq, record.queue) == ("queued", 1, "interactive")
    assert await redis.zrange(keys.queue("interactive"), 0, -1) == ["job_a"]
    assert await redis.exists("arq:job:job_a") == 1
    assert await redis.lrange(keys.queue_notify("interactive"), 0, -1) == ["1"]
    assert await _submit(store, "job_b", max_depth=1, max_retry_after_s=99) == "overloaded"
    assert await store.get("job_b") is None


async def test_lua_job_append(redis: Redis, keys: Keys) -> None:
    """Events get consecutive sequence numbers; the terminal one marks the job done, counts
    it in the tenant's usage and refuses anything after it."""
    store = _store(redis, keys)
    await _submit(store, "job_a")
    assert await store.append("job_a", AnswerDelta(delta="Under the mat.")) == 2
    result = JobResult(answer="Under the mat.", citations=[], model="m")
    job = await store.finish("job_a", "completed", result=result)
    assert job is not None
    assert await store.append("job_a", AnswerDelta(delta="late")) == 0
    events = await store.read_events("job_a", 0, block_ms=None)
    assert [e.name for e in events] == ["job.queued", "answer.delta", "job.completed"]
    assert json.loads(events[1].data) == {"sequence_number": 2, "delta": "Under the mat."}
    completed = events[2].parsed()
    assert isinstance(completed, JobCompleted)
    assert completed.job.result == result
    assert await redis.xlen(keys.job_done("job_a")) == 1
    usage = await redis.hgetall(keys.usage(job.created_at[:10], "acme"))
    assert usage["completed"] == "1"
    assert await store.append("job_gone", AnswerDelta(delta="x")) == -1


async def test_lua_job_cancel(redis: Redis, keys: Keys) -> None:
    """Cancelling a queued job ends its stream, takes it off arq's queue and its key's
    lease set; a second cancel finds it terminal."""
    store = _store(redis, keys)
    lease = keys.leases("key_1")
    await _submit(store, "job_a", lease_key=lease, max_concurrent=2)
    assert await redis.zcard(lease) == 1
    record = await store.get("job_a")
    assert record is not None
    assert await store.cancel(record) == 2
    assert await redis.zcard(keys.queue("interactive")) == 0
    assert await redis.exists("arq:job:job_a") == 0
    assert await redis.zcard(lease) == 0
    after = await store.get("job_a")
    assert after is not None
    assert after.status == "cancelled"
    assert await store.cancel(after) == 0


async def test_lua_job_note(redis: Redis, keys: Keys) -> None:
    """A note sets fields of a running job, never of a terminal one."""
    store = _store(redis, keys)
    await _submit(store, "job_a")
    await store.note("job_a", pending_result="{}")
    assert await redis.hget(keys.job("job_a"), "pending_result") == "{}"
    await store.finish("job_a", "failed", error=JobError(type="t", message="m"))
    await store.note("job_a", pending_result="again")
    assert await redis.hget(keys.job("job_a"), "pending_result") is None


async def test_lua_coalescing_seal(redis: Redis, keys: Keys) -> None:
    """An identical request follows the running one; sealing the leader returns it and
    lets the next identical request lead again."""
    store = _store(redis, keys)
    inflight = keys.inflight("acme", "0", "digest")
    pointer = keys.answer_pointer("acme", "0", "digest")
    assert await _submit(store, "job_a", inflight_key=inflight, pointer_key=pointer) == "ok"
    assert await _submit(store, "job_b", inflight_key=inflight, pointer_key=pointer) == (
        "coalesced"
    )
    leader = await store.get("job_a")
    assert leader is not None
    assert await store.coalescing.seal(leader) == ["job_b"]
    assert await redis.exists(inflight) == 0


async def test_lua_leases_renew(redis: Redis, keys: Keys) -> None:
    """Renewing pushes a held lease's expiry out; a lease no longer held is not re-added."""
    store = _store(redis, keys)
    lease = keys.leases("key_1")
    await redis.zadd(lease, {"job_a": 1})
    await store.renew_leases({"job_a": lease, "job_b": lease}, 3_600_000)
    assert await redis.zscore(lease, "job_a") > 1  # type: ignore[operator]
    assert await redis.zscore(lease, "job_b") is None
    assert 0 < await redis.pttl(lease) <= 3_600_000


async def test_lua_queue_enqueue(redis: Redis, keys: Keys) -> None:
    """A job without a record is queued once: the same id again is refused."""
    enqueuer = Enqueuer(redis, keys)
    assert await enqueuer.enqueue("batch", "ingest", "ing_1", {"x": 1}) is True
    assert await enqueuer.enqueue("batch", "ingest", "ing_1", {"x": 1}) is False
    assert await redis.zrange(keys.queue("batch"), 0, -1) == ["ing_1"]
    assert json.loads(await redis.get("arq:job:ing_1") or "")["a"] == [{"x": 1}]


async def test_lua_budget_reserve(redis: Redis, keys: Keys) -> None:
    """A reservation counts against both budgets until one has no room left."""
    budgets = Budgets(redis, keys, service_cap_usd=1.0)
    first = await budgets.reserve("acme", 0.6, None)
    assert not isinstance(first, str)
    assert await budgets.spent("acme") == (0.6, 0.6)
    assert await budgets.reserve("acme", 0.6, None) == "service"
    assert await budgets.reserve("acme", 0.3, 0.5) == "tenant"
