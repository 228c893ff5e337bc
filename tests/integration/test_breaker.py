"""The LLM's resilience on real Redis and the test LLM server: the circuit breaker shared by
every process (open, half-open probe, close), the one retry layer, endpoint failover, and
jobs that degrade with `circuit_open` and recover."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from scripts.testllm import Behaviour, answer_for, serve_testllm, split_tokens
from shared.clients import make_redis
from shared.config import Settings
from shared.errors import CircuitOpen, UpstreamTimeout, UpstreamUnavailable
from shared.redis_keys import Keys
from tests.conftest import MakeSettings
from tests.integration.conftest import MakeLLM, auth, finished, ingest
from tests.integration.test_job_path import ROTATION
from tests.integration.test_llm_path import control, stats
from workers.rag.breaker import CircuitBreaker
from workers.rag.llm import LLMClient
from workers.rag.replies import Completion

pytestmark = pytest.mark.integration
StartWorker = Callable[[Settings], Awaitable[None]]
TARGET = "http://llm-0.test:8000/v1"
MESSAGES = [
    {"role": "system", "content": "Answer from the sources."},
    {
        "role": "user",
        "content": "Sources:\n[1] Rotate a signing key with vault keys rotate.\n"
        "Question: How do I rotate a signing key?",
    },
]
ANSWER = answer_for(MESSAGES)
DEADLINE_S = 30.0  # bound of every wait on the half-open period
# seconds: a breaker opened in a test stays open for the rest of it, however slow the
# machine; tests of the half-open state pass SHORT_OPEN_S and wait for it to lapse, or end
# the open period with `end_open_period`
LONG_OPEN_S = 3600.0
SHORT_OPEN_S = 0.2


def breaker_settings(make_settings: MakeSettings, **overrides: Any) -> Settings:
    """Settings whose breaker opens on 3 failures in a row, the ratio kept out of the way."""
    values: dict[str, Any] = {
        "llm_retries": 0,
        "llm_retry_backoff_s": 0.0,
        "breaker_failures": 3,
        "breaker_min_calls": 1000,
        "breaker_open_s": LONG_OPEN_S,
    }
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture
async def second_redis(settings: Settings, redis: Redis) -> AsyncIterator[Redis]:
    """Another worker process's Redis client (its own pool), on the same test DB."""
    client = make_redis(settings)
    try:
        yield client
    finally:
        await client.aclose()


async def ask(llm: LLMClient, affinity: str = "a", tokens: list[str] | None = None) -> str:
    """One streamed answer through the client; `tokens` collects the deltas as they come."""
    seen = [] if tokens is None else tokens
    async for delta in llm.stream(
        MESSAGES,
        completion=Completion(model="qwen2.5-7b-instruct"),
        max_tokens=256,
        temperature=0,
        affinity=affinity,
    ):
        seen.append(delta)
    return "".join(seen)


async def error_of(call: Awaitable[object]) -> type[BaseException] | None:
    """The type of the exception `call` raises (None if it returns)."""
    try:
        await call
    except Exception as exc:
        return type(exc)
    return None


async def chat_requests(url: str) -> int:
    """How many chat requests the test LLM at `url` received."""
    return int((await stats(url))["chat_requests"])


async def open_breaker(breaker: CircuitBreaker, target: str, failures: int) -> None:
    """Record `failures` failed calls in a row."""
    for _ in range(failures):
        await breaker.record(target, False)


async def wait_half_open(breaker: CircuitBreaker, target: str) -> None:
    """Poll (read-only: no probe taken) until the open period of `target` has passed."""
    deadline = time.monotonic() + DEADLINE_S
    while await breaker.open_targets([target]):
        assert time.monotonic() < deadline, "the breaker never became half-open"
        await asyncio.sleep(0.02)


async def end_open_period(redis: Redis, keys: Keys, target: str) -> None:
    """End the open period of `target`'s breaker now, as if it had been waited out: its
    `open_until` (Redis ms, see workers.rag.breaker) moves into the past."""
    await redis.hset(keys.breaker(target), "open_until", 1)


# --------------------------------------------------------------------------- the breaker


async def test_breaker_opens_after_exactly_the_configured_consecutive_failures(
    redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """failures - 1 failed calls leave the breaker closed; one more opens it."""
    breaker = CircuitBreaker.from_settings(redis, keys, breaker_settings(make_settings))
    await open_breaker(breaker, TARGET, 2)
    before = (await breaker.acquire(TARGET)).verdict
    await breaker.record(TARGET, False)
    after = (await breaker.acquire(TARGET)).verdict
    assert (before, after) == ("allowed", "open")


async def test_a_success_resets_the_consecutive_count(
    redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """Failures separated by a success are not consecutive: the breaker stays closed."""
    breaker = CircuitBreaker.from_settings(redis, keys, breaker_settings(make_settings))
    await open_breaker(breaker, TARGET, 2)
    await breaker.record(TARGET, True)
    await open_breaker(breaker, TARGET, 2)
    assert (await breaker.acquire(TARGET)).verdict == "allowed"


async def test_failure_ratio_opens_once_the_window_has_enough_calls(
    redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """A failure share >= the ratio opens the breaker, but only from min_calls calls on."""
    settings = breaker_settings(
        make_settings, breaker_failures=100, breaker_failure_ratio=0.5, breaker_min_calls=4
    )
    breaker = CircuitBreaker.from_settings(redis, keys, settings)
    for ok in (False, True, False):  # 2 of 3 failed, below min_calls
        await breaker.record(TARGET, ok)
    below_min_calls = (await breaker.acquire(TARGET)).verdict
    await breaker.record(TARGET, True)  # 2 of 4 failed: 0.5
    assert (below_min_calls, (await breaker.acquire(TARGET)).verdict) == ("allowed", "open")


async def test_two_processes_share_one_breaker(
    redis: Redis, second_redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """Failures recorded by one process open the breaker for another process too."""
    settings = breaker_settings(make_settings)
    first = CircuitBreaker.from_settings(redis, keys, settings)
    second = CircuitBreaker.from_settings(second_redis, keys, settings)
    await open_breaker(first, TARGET, 2)
    await second.record(TARGET, False)
    assert [(await b.acquire(TARGET)).verdict for b in (first, second)] == ["open", "open"]


async def test_half_open_grants_exactly_one_probe_across_processes(
    redis: Redis, second_redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """Once the open period passes, of many concurrent callers in two processes exactly
    one gets the probe; the others are still refused."""
    settings = breaker_settings(make_settings, breaker_open_s=SHORT_OPEN_S)
    breakers = [CircuitBreaker.from_settings(r, keys, settings) for r in (redis, second_redis)]
    await open_breaker(breakers[0], TARGET, 3)
    await wait_half_open(breakers[0], TARGET)
    admissions = await asyncio.gather(*(b.acquire(TARGET) for b in breakers * 10))
    assert Counter(a.verdict for a in admissions) == {"probe": 1, "open": 19}


async def test_a_successful_probe_closes_the_breaker_and_resets_its_counters(
    redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """The probe's success closes the breaker; it then takes `failures` new failures again."""
    breaker = CircuitBreaker.from_settings(
        redis, keys, breaker_settings(make_settings, breaker_open_s=SHORT_OPEN_S)
    )
    await open_breaker(breaker, TARGET, 3)
    await wait_half_open(breaker, TARGET)
    probe = await breaker.acquire(TARGET)
    await breaker.record(TARGET, True, probe=probe.probe)
    closed = (await breaker.acquire(TARGET)).verdict
    await open_breaker(breaker, TARGET, 2)
    assert (probe.verdict, closed, (await breaker.acquire(TARGET)).verdict) == (
        "probe",
        "allowed",
        "allowed",
    )


async def test_a_failed_probe_reopens_the_breaker(
    redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """The probe's failure re-opens the breaker for another open period: no new probe."""
    short = breaker_settings(make_settings, breaker_open_s=SHORT_OPEN_S)
    breaker = CircuitBreaker.from_settings(redis, keys, short)
    await open_breaker(breaker, TARGET, 3)
    await wait_half_open(breaker, TARGET)
    # the probe's outcome is recorded by a process whose open period cannot lapse in the test
    prober = CircuitBreaker.from_settings(redis, keys, breaker_settings(make_settings))
    probe = await prober.acquire(TARGET)
    await prober.record(TARGET, False, probe=probe.probe)
    reopened = await breaker.open_targets([TARGET])
    assert (probe.verdict, reopened, (await breaker.acquire(TARGET)).verdict) == (
        "probe",
        [TARGET],
        "open",
    )


async def test_a_released_probe_goes_to_the_next_caller(
    redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """A probe given back without an outcome (its caller was cancelled) is granted again."""
    breaker = CircuitBreaker.from_settings(
        redis, keys, breaker_settings(make_settings, breaker_open_s=SHORT_OPEN_S)
    )
    await open_breaker(breaker, TARGET, 3)
    await wait_half_open(breaker, TARGET)
    probe = await breaker.acquire(TARGET)
    held = (await breaker.acquire(TARGET)).verdict
    await breaker.release(TARGET, probe)
    assert (held, (await breaker.acquire(TARGET)).verdict) == ("open", "probe")


async def test_late_outcomes_do_not_close_an_open_breaker(
    redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """A success of a call admitted before the breaker opened does not close it."""
    breaker = CircuitBreaker.from_settings(redis, keys, breaker_settings(make_settings))
    await open_breaker(breaker, TARGET, 3)
    await breaker.record(TARGET, True)
    assert await breaker.open_targets([TARGET]) == [TARGET]


async def test_breaker_keys_expire_by_themselves(
    redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """Every key the breaker writes, closed or open, carries a TTL (no cleanup job)."""
    breaker = CircuitBreaker.from_settings(redis, keys, breaker_settings(make_settings))
    await breaker.record(TARGET, False)
    await breaker.record("http://llm-1.test:8000/v1", True)
    await open_breaker(breaker, "http://llm-2.test:8000/v1", 3)
    names = [name async for name in redis.scan_iter(match=f"{keys.prefix}:breaker:*")]
    ttls = [await redis.pttl(name) for name in names]
    assert len(names) >= 4
    assert all(ttl > 0 for ttl in ttls), dict(zip(names, ttls, strict=True))


# --------------------------------------------------------------------------- the client


async def test_open_breaker_refuses_calls_without_reaching_the_llm(
    testllm: str, make_settings: MakeSettings, make_llm: MakeLLM
) -> None:
    """3 failed calls open the breaker; the 4th raises CircuitOpen and makes no request."""
    await control(testllm, fail_status=503, fail_next=-1)
    llm = make_llm(breaker_settings(make_settings, llm_base_url=f"{testllm}/v1"))
    failures = [await error_of(ask(llm)) for _ in range(3)]
    before = await chat_requests(testllm)
    refused = await error_of(ask(llm))
    assert failures == [UpstreamUnavailable] * 3
    assert refused is CircuitOpen
    assert (before, await chat_requests(testllm)) == (3, 3)


async def test_breaker_opening_mid_retries_stops_them(
    testllm: str, make_settings: MakeSettings, make_llm: MakeLLM
) -> None:
    """With retries left but the breaker opened by the attempts so far, the next attempt
    is not made: the call ends after `failures` requests with the last one's error (its
    own failure, not the CircuitOpen those failures caused)."""
    await control(testllm, fail_status=503, fail_next=-1)
    settings = breaker_settings(make_settings, llm_base_url=f"{testllm}/v1", llm_retries=5)
    raised = await error_of(ask(make_llm(settings)))
    assert (raised, await chat_requests(testllm)) == (UpstreamUnavailable, 3)


async def test_two_clients_see_the_same_breaker(
    testllm: str, make_settings: MakeSettings, make_llm: MakeLLM, second_redis: Redis
) -> None:
    """A client in another process (own Redis client) is refused once the first one's
    failures opened the endpoint's breaker, and both report the LLM degraded."""
    await control(testllm, fail_status=503, fail_next=-1)
    settings = breaker_settings(make_settings, llm_base_url=f"{testllm}/v1")
    first, second = make_llm(settings), make_llm(settings, redis=second_redis)
    healthy = await second.state()
    for _ in range(3):
        await error_of(ask(first))
    refused = await error_of(ask(second))
    assert (healthy, refused, await chat_requests(testllm)) == ("ok", CircuitOpen, 3)
    assert [await first.state(), await second.state()] == ["degraded", "degraded"]


async def test_half_open_probe_through_the_client_closes_the_breaker(
    testllm: str, make_settings: MakeSettings, make_llm: MakeLLM, redis: Redis, keys: Keys
) -> None:
    """After the open period a call is let through as the probe; its success closes the
    breaker, so the next call goes through too."""
    await control(testllm, fail_status=503, fail_next=3)
    settings = breaker_settings(make_settings, llm_base_url=f"{testllm}/v1")
    llm = make_llm(settings)
    for _ in range(3):
        await error_of(ask(llm))
    refused = await error_of(ask(llm))
    degraded = await llm.state()
    await end_open_period(redis, keys, settings.llm_base_urls[0])
    answers = [await ask(llm), await ask(llm)]
    assert (refused, degraded) == (CircuitOpen, "degraded")
    assert answers == [ANSWER, ANSWER]
    assert (await chat_requests(testllm), await llm.state()) == (5, "ok")


@pytest.mark.parametrize("status", [503, 429])
async def test_transient_failures_are_retried_until_the_full_answer(
    status: int, testllm: str, make_settings: MakeSettings, make_llm: MakeLLM
) -> None:
    """Two failed requests (503 or 429) then a good one: with llm_retries=2 the caller
    gets the full answer, once, and the breaker stays closed."""
    await control(testllm, fail_status=status, fail_next=2)
    settings = breaker_settings(
        make_settings, llm_base_url=f"{testllm}/v1", llm_retries=2, breaker_failures=5
    )
    llm = make_llm(settings)
    answer = await ask(llm)
    assert (answer, await chat_requests(testllm), await llm.state()) == (ANSWER, 3, "ok")


async def test_a_client_error_is_neither_retried_nor_counted_by_the_breaker(
    testllm: str, make_settings: MakeSettings, make_llm: MakeLLM
) -> None:
    """A 400 is raised after one request, and even a breaker that opens on one failure
    stays closed: the next call reaches the endpoint."""
    await control(testllm, fail_status=400, fail_next=1)
    settings = breaker_settings(
        make_settings, llm_base_url=f"{testllm}/v1", llm_retries=2, breaker_failures=1
    )
    llm = make_llm(settings)
    raised = await error_of(ask(llm))
    after_error = await chat_requests(testllm)
    answer = await ask(llm)
    assert (raised, after_error) == (UpstreamUnavailable, 1)
    assert (answer, await chat_requests(testllm)) == (ANSWER, 2)


async def test_a_failure_after_streamed_tokens_is_not_retried(
    testllm: str, make_settings: MakeSettings, make_llm: MakeLLM
) -> None:
    """A stream cut after 2 tokens raises after yielding them: no second request, no
    text repeated."""
    await control(testllm, drop_after_tokens=2)
    settings = breaker_settings(make_settings, llm_base_url=f"{testllm}/v1", llm_retries=2)
    tokens: list[str] = []
    raised = await error_of(ask(make_llm(settings), tokens=tokens))
    assert raised is UpstreamUnavailable
    assert tokens == split_tokens(ANSWER)[:2]
    assert await chat_requests(testllm) == 1


async def test_a_timeout_before_the_first_token_is_retried(
    testllm: str, make_settings: MakeSettings, make_llm: MakeLLM
) -> None:
    """An endpoint that never answers is tried 1 + llm_retries times, then UpstreamTimeout."""
    await control(testllm, hang=True)
    settings = breaker_settings(
        make_settings, llm_base_url=f"{testllm}/v1", llm_retries=1, llm_timeout_s=0.3
    )
    raised = await error_of(ask(make_llm(settings)))
    assert (raised, await chat_requests(testllm)) == (UpstreamTimeout, 2)


async def test_an_open_endpoint_fails_over_to_the_next_one(
    testllm: str, make_settings: MakeSettings, make_llm: MakeLLM, redis: Redis, keys: Keys
) -> None:
    """With the first endpoint's breaker open, every call goes to the second; with both
    open, CircuitOpen and the client reports itself degraded."""
    async with serve_testllm(Behaviour()) as other:
        first, second = f"{testllm}/v1", f"{other}/v1"
        settings = breaker_settings(make_settings, llm_base_url=f"{first},{second}")
        llm = make_llm(settings)
        breaker = CircuitBreaker.from_settings(redis, keys, settings)
        # open for LONG_OPEN_S: however slowly the six calls run, no probe reaches `first`
        await open_breaker(breaker, first, 3)
        answers = [await ask(llm, affinity=f"prefix-{i}") for i in range(6)]
        one_open = await llm.state()
        await open_breaker(breaker, second, 3)
        refused = await error_of(ask(llm))
        counts = [await chat_requests(testllm), await chat_requests(other)]
        all_open = await llm.state()
    assert answers == [ANSWER] * 6
    assert counts == [0, 6]
    assert (one_open, refused, all_open) == ("ok", CircuitOpen, "degraded")


# --------------------------------------------------------------------------- jobs


async def submit(api: httpx.AsyncClient, key: str, question: str) -> dict[str, Any]:
    """Submit a question and wait for its job to end."""
    posted = await api.post("/v1/jobs", json={"question": question}, headers=auth(key))
    assert posted.status_code == 202, posted.text
    return await finished(api, key, posted.json()["id"])


async def test_jobs_degrade_with_circuit_open_then_recover(
    api: httpx.AsyncClient,
    issue_key: Callable[..., Any],
    make_settings: MakeSettings,
    start_worker: StartWorker,
    testllm: str,
    redis: Redis,
    keys: Keys,
) -> None:
    """A failing LLM: the first 3 jobs degrade as llm_unavailable, then the breaker is
    open and jobs degrade as circuit_open at once, without reaching the LLM; once it
    recovers, the half-open probe closes the breaker and a job gets the LLM's answer."""
    await control(testllm, fail_status=503, fail_next=-1)
    settings = breaker_settings(make_settings, llm_base_url=f"{testllm}/v1")
    await start_worker(settings)
    key = await issue_key("acme")
    await ingest(api, key, ROTATION)
    # distinct questions, so no answer cache or request coalescing can stand in for a job
    failed = [await submit(api, key, f"What is VLT-4031? ({i})") for i in range(3)]
    refused = await submit(api, key, "What is VLT-4031? (refused)")
    requests_while_open = await chat_requests(testllm)
    await control(testllm, fail_next=0)
    await end_open_period(redis, keys, settings.llm_base_urls[0])
    job = await submit(api, key, "What is VLT-4031? (the probe)")
    assert [j["result"]["degraded_reason"] for j in failed] == ["llm_unavailable"] * 3
    assert (refused["status"], refused["result"]["degraded_reason"]) == (
        "completed",
        "circuit_open",
    )
    assert requests_while_open == 3  # the refused job never reached the LLM
    assert job["result"]["answer"].startswith("According to the sources, ")
    assert job["result"]["degraded_reason"] is None
