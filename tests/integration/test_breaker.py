"""The circuit breaker shared by every process, on real Redis: it opens on consecutive
failures or a failure ratio, grants one half-open probe across processes, closes or re-opens
on the probe's outcome, and its keys expire by themselves. The LLM client's retries and
failover: test_breaker_client.py; jobs degrading with `circuit_open`: test_breaker_jobs.py."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from redis.asyncio import Redis

from shared.redis_keys import Keys
from tests.conftest import MakeSettings
from tests.integration.breakers import (
    TARGET,
    breaker_settings,
    end_open_period,
    open_breaker,
)
from workers.rag.breaker import CircuitBreaker

pytestmark = pytest.mark.integration


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


async def test_successes_before_any_failure_count_in_the_ratio(
    redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """Successes recorded while the window held no failure (the script's cheap path) still
    count: 10 successes then 4 failures is 4 of 14, below the ratio, so it stays closed;
    6 more failures (10 of 20) open it."""
    settings = breaker_settings(
        make_settings, breaker_failures=100, breaker_failure_ratio=0.5, breaker_min_calls=4
    )
    breaker = CircuitBreaker.from_settings(redis, keys, settings)
    for ok in [True] * 10 + [False] * 4:
        await breaker.record(TARGET, ok)
    after_four = (await breaker.acquire(TARGET)).verdict
    for _ in range(6):
        await breaker.record(TARGET, False)
    assert (after_four, (await breaker.acquire(TARGET)).verdict) == ("allowed", "open")


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
    settings = breaker_settings(make_settings)
    breakers = [CircuitBreaker.from_settings(r, keys, settings) for r in (redis, second_redis)]
    await open_breaker(breakers[0], TARGET, 3)
    await end_open_period(redis, keys, TARGET)
    admissions = await asyncio.gather(*(b.acquire(TARGET) for b in breakers * 10))
    assert Counter(a.verdict for a in admissions) == {"probe": 1, "open": 19}


async def test_a_successful_probe_closes_the_breaker_and_resets_its_counters(
    redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """The probe's success closes the breaker; it then takes `failures` new failures again."""
    breaker = CircuitBreaker.from_settings(redis, keys, breaker_settings(make_settings))
    await open_breaker(breaker, TARGET, 3)
    await end_open_period(redis, keys, TARGET)
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
    breaker = CircuitBreaker.from_settings(redis, keys, breaker_settings(make_settings))
    await open_breaker(breaker, TARGET, 3)
    await end_open_period(redis, keys, TARGET)
    probe = await breaker.acquire(TARGET)
    await breaker.record(TARGET, False, probe=probe.probe)
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
    breaker = CircuitBreaker.from_settings(redis, keys, breaker_settings(make_settings))
    await open_breaker(breaker, TARGET, 3)
    await end_open_period(redis, keys, TARGET)
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
