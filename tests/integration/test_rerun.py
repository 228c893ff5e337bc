"""A re-run job (after a worker crash) continues the answer its first attempt streamed,
so clients concatenating deltas still get exactly the final answer; one that dies after
its answer was generated finishes without the LLM; a finished job is counted once."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.jobstore import JobStore
from shared.redis_keys import Keys
from shared.schemas.jobs import JobCreate
from tests.conftest import MakeSettings
from tests.integration.conftest import Answering, auth, finished, sse_events
from workers.jobs.resume import Emitter, JobStopped

pytestmark = pytest.mark.integration


async def _job(redis: Redis, keys: Keys) -> tuple[JobStore, str]:
    # an hour: the job and its events outlive the test however slowly the machine runs it
    store = JobStore(redis, keys, ttl_s=3600, events_max_len=1000)
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
    first = Emitter(SimpleNamespace(jobs=store), job_id, "")  # type: ignore[arg-type]
    await _emit_all(first, ["Rotate ", "the ", "ke"])
    second = Emitter(SimpleNamespace(jobs=store), job_id, first.text)  # type: ignore[arg-type]
    await _emit_all(second, ["Rotate ", "the ", "key ", "weekly."])
    assert "".join(await _deltas(store, job_id)) == "Rotate the key weekly."
    assert second.text == "Rotate the key weekly."


async def test_rerun_that_diverges_keeps_deltas_equal_to_the_answer(
    redis: Redis, keys: Keys
) -> None:
    """If the regenerated text differs, the answer continues after what was streamed,
    so deltas and answer never disagree."""
    store, job_id = await _job(redis, keys)
    first = Emitter(SimpleNamespace(jobs=store), job_id, "")  # type: ignore[arg-type]
    await _emit_all(first, ["Alpha ", "beta "])
    second = Emitter(SimpleNamespace(jobs=store), job_id, first.text)  # type: ignore[arg-type]
    await _emit_all(second, ["Alpha ", "gamma ", "delta."])
    assert "".join(await _deltas(store, job_id)) == second.text
    assert second.text.startswith("Alpha beta ")


async def test_emitting_into_a_cancelled_job_stops_the_job(redis: Redis, keys: Keys) -> None:
    """Once the job is cancelled, the next delta is refused and the job stops."""
    store, job_id = await _job(redis, keys)
    emitter = Emitter(SimpleNamespace(jobs=store), job_id, "")  # type: ignore[arg-type]
    record = await store.get(job_id)
    assert record is not None
    await store.cancel(record)
    with pytest.raises(JobStopped):
        await emitter.emit("late token")
    assert await _deltas(store, job_id) == []


def die_once(monkeypatch: pytest.MonkeyPatch, method: str, *, before: bool, when: str) -> None:
    """Make the worker 'die' once at `JobStore.<method>`: the first call whose arguments
    name `when` raises CancelledError, before or after doing its work. CancelledError is
    what a worker's shutdown does to a job: arq leaves it queued and it runs again."""
    real = getattr(JobStore, method)
    fired = False

    async def dying(self: JobStore, *args: Any, **kwargs: Any) -> Any:
        nonlocal fired
        named = [getattr(a, "event", a) for a in args]  # events go by their name
        hit = not fired and when in named
        fired = fired or hit
        if hit and before:
            raise asyncio.CancelledError
        outcome = await real(self, *args, **kwargs)
        if hit:
            raise asyncio.CancelledError
        return outcome

    monkeypatch.setattr(JobStore, method, dying)


@pytest.fixture
async def llm_key(answering: Answering, make_settings: MakeSettings, testllm: str) -> str:
    """A worker answering with the test LLM, and a key whose tenant has a document."""
    return await answering(make_settings(llm_base_url=f"{testllm}/v1"))


async def _answered_after_a_death(
    api: httpx.AsyncClient, key: str, testllm: str
) -> tuple[dict[str, Any], list[str], dict[str, Any], int]:
    """Ask once (temperature 0.5: never answered from the cache); the job, its event names,
    the tenant's usage and the number of LLM calls once it is done."""
    body = {"question": "What is VLT-4031?", "temperature": 0.5}
    job_id = (await api.post("/v1/jobs", json=body, headers=auth(key))).json()["id"]
    job = await finished(api, key, job_id)
    events = await sse_events(api, key, job_id)
    usage = (await api.get("/v1/usage", headers=auth(key))).json()
    async with httpx.AsyncClient() as client:
        calls = (await client.get(f"{testllm}/_stats")).json()["chat_requests"]
    deltas = "".join(d["delta"] for _, name, d in events if name == "answer.delta")
    assert deltas == job["result"]["answer"]
    return job, [name for _, name, _ in events], usage, int(calls)


async def test_a_rerun_after_the_whole_answer_finishes_it_without_the_llm(
    api: httpx.AsyncClient, llm_key: str, testllm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies after the whole answer was generated, streamed and paid for, just
    before the job completes: the re-run completes it with that answer, without a second
    LLM call, and the stream carries one answer.completed; usage counts one completion."""
    die_once(monkeypatch, "finish", before=True, when="completed")
    job, names, usage, calls = await _answered_after_a_death(api, llm_key, testllm)
    assert job["status"] == "completed"
    assert job["result"]["degraded"] is False
    assert (calls, names.count("answer.completed"), usage["jobs"]["completed"]) == (1, 1, 1)
    assert names[-2:] == ["answer.completed", "job.completed"]


async def test_a_job_is_counted_in_usage_even_if_its_worker_dies_right_after(
    api: httpx.AsyncClient, llm_key: str, testllm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies right after the job's terminal event is written: /v1/usage still
    counts the completion and its tokens (they are counted in the same step)."""
    die_once(monkeypatch, "append", before=False, when="job.completed")
    job, names, usage, calls = await _answered_after_a_death(api, llm_key, testllm)
    tokens = job["result"]["usage"]
    assert (job["status"], calls, names.count("job.completed")) == ("completed", 1, 1)
    assert usage["jobs"]["completed"] == 1
    assert usage["tokens"] == {
        "prompt": tokens["prompt_tokens"],
        "completion": tokens["completion_tokens"],
    }
