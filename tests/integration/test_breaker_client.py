"""The LLM client's resilience on real Redis and the test LLM server: an open breaker
refuses calls without reaching the LLM, the one retry layer (what is retried, what is not),
a half-open probe through the client, and failover from an open endpoint to the next."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from scripts.testllm import Behaviour, serve_testllm, split_tokens
from shared.errors import CircuitOpen, UpstreamTimeout, UpstreamUnavailable
from shared.redis_keys import Keys
from tests.conftest import MakeSettings
from tests.integration.breakers import (
    ANSWER,
    ask,
    breaker_settings,
    chat_requests,
    end_open_period,
    error_of,
    open_breaker,
)
from tests.integration.conftest import MakeLLM
from tests.integration.test_llm_path import control
from workers.rag.breaker import CircuitBreaker

pytestmark = pytest.mark.integration


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
    # a second: a loaded machine still gets each request to the server before it times out
    settings = breaker_settings(
        make_settings, llm_base_url=f"{testllm}/v1", llm_retries=1, llm_timeout_s=1.0
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
