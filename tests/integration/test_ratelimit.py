"""Per-key rate limits on the in-process app over the real Redis: refusals as problem+json
with Retry-After, RateLimit headers on every authenticated response, keys limited apart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from shared.redis_keys import Keys
from tests.conftest import MakeSettings, api_with
from tests.integration.conftest import auth

pytestmark = pytest.mark.integration

RATELIMIT_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def limits(response: httpx.Response) -> tuple[str | None, ...]:
    """The response's RateLimit-Limit, -Remaining and -Reset (None where absent)."""
    return tuple(response.headers.get(h) for h in RATELIMIT_HEADERS)


def rejections() -> float:
    """The API process's count of rate-limited refusals."""
    sample = REGISTRY.get_sample_value(
        "ragq_admission_rejections_total", {"reason": "rate_limited"}
    )
    return sample or 0.0


def key_id(key: str) -> str:
    """The public id inside a key `rq_<id>_<secret>`."""
    return key.split("_")[1]


@pytest.fixture
async def api_default_rpm(
    make_settings: MakeSettings, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a service default of 2 requests per minute."""
    async with api_with(make_settings(default_rpm=2)) as client:
        yield client


async def test_request_over_the_limit_is_a_429_problem_with_retry_after(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """With rpm 3, the 4th request in the minute is 429 rate-limited problem+json, with
    Retry-After equal to RateLimit-Reset (whole seconds, 1 to 60) and Remaining 0; the
    refusal is counted in ragq_admission_rejections_total{reason="rate_limited"}."""
    key = await issue_key("acme", rpm=3)
    before = rejections()
    admitted = [await api.get("/v1/documents", headers=auth(key)) for _ in range(3)]
    refused = await api.get("/v1/documents", headers=auth(key))
    problem = refused.json()
    retry_after = int(refused.headers["retry-after"])
    assert [r.status_code for r in admitted] == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert problem["type"] == "https://ragq.dev/problems/rate-limited"
    assert problem["detail"] == "3 requests per minute for this key"
    assert 1 <= retry_after <= 60
    assert limits(refused) == ("3", "0", str(retry_after))
    assert rejections() - before == 1


async def test_every_authenticated_response_counts_down_remaining(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """Successes, errors and the 429 itself all carry the RateLimit headers, Remaining
    falling by one per admitted request; an unauthenticated response carries none."""
    key = await issue_key("acme", rpm=3)
    responses = [
        await api.get("/v1/documents", headers=auth(key)),
        await api.get("/v1/documents/doc_missing", headers=auth(key)),
        await api.post("/v1/jobs", json={"question": ""}, headers=auth(key)),
        await api.get("/v1/documents", headers=auth(key)),
    ]
    anonymous = await api.get("/v1/documents")
    resets = {int(r.headers["ratelimit-reset"]) for r in responses}
    assert [r.status_code for r in responses] == [200, 404, 422, 429]
    assert [limits(r)[:2] for r in responses] == [("3", "2"), ("3", "1"), ("3", "0"), ("3", "0")]
    assert all(1 <= reset <= 60 for reset in resets)
    assert (anonymous.status_code, limits(anonymous)) == (401, (None, None, None))


async def test_keys_do_not_share_a_limit(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """Another key of the same tenant keeps its whole quota after the first is exhausted."""
    first = await issue_key("acme", rpm=3)
    second = await issue_key("acme", rpm=3)
    exhausted = [
        (await api.get("/v1/documents", headers=auth(first))).status_code for _ in range(4)
    ]
    other = await api.get("/v1/documents", headers=auth(second))
    assert exhausted == [200, 200, 200, 429]
    assert (other.status_code, limits(other)[:2]) == (200, ("3", "2"))


async def test_refused_requests_do_not_consume_quota(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], redis: Redis, keys: Keys
) -> None:
    """Only admitted requests are logged: after many 429s, once the oldest admitted request
    leaves the window (its log entry removed here) exactly one more request is admitted."""
    key = await issue_key("acme", rpm=3)
    window = keys.ratelimit(key_id(key))
    statuses = [(await api.get("/v1/documents", headers=auth(key))).status_code for _ in range(8)]
    logged = await redis.zcard(window)
    await redis.zpopmin(window)  # what 60 s of waiting would do to the oldest entry
    after = [(await api.get("/v1/documents", headers=auth(key))).status_code for _ in range(2)]
    assert statuses == [200] * 3 + [429] * 5
    assert logged == 3
    assert after == [200, 429]


async def test_rpm_zero_with_default_zero_is_unlimited_without_headers(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """A key with rpm 0 under a service default of 0 is never refused and gets no headers."""
    key = await issue_key("acme", rpm=0)
    responses = [await api.get("/v1/documents", headers=auth(key)) for _ in range(30)]
    assert {r.status_code for r in responses} == {200}
    assert {limits(r) for r in responses} == {(None, None, None)}


async def test_key_without_its_own_rpm_gets_the_service_default(
    api_default_rpm: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """rpm 0 means the service default (2 here); a key's own rpm wins over the default."""
    plain = await issue_key("acme")
    own = await issue_key("acme", rpm=3)
    defaulted = [await api_default_rpm.get("/v1/documents", headers=auth(plain)) for _ in range(3)]
    overridden = [await api_default_rpm.get("/v1/documents", headers=auth(own)) for _ in range(4)]
    assert [r.status_code for r in defaulted] == [200, 200, 429]
    assert defaulted[-1].json()["detail"] == "2 requests per minute for this key"
    assert [r.status_code for r in overridden] == [200, 200, 200, 429]
