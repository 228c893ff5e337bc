"""HTTP caching of `GET /v1/jobs/{id}`: terminal jobs are immutable (ETag, 304, max-age of
their remaining TTL), unfinished ones are never stored, and caching never crosses tenants."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.config import Settings
from shared.redis_keys import Keys
from tests.integration.cachedjobs import completed_job, queued_job
from tests.integration.conftest import auth

pytestmark = pytest.mark.integration

CACHE_CONTROL = re.compile(r"^private, max-age=(\d+), immutable$")


async def test_completed_job_has_a_stable_strong_etag(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None, settings: Settings
) -> None:
    """Two GETs of a completed job carry the same strong ETag and a private, immutable
    Cache-Control whose max-age is at most the result TTL."""
    key = await issue_key("acme")
    job = await completed_job(api, key)
    first = await api.get(f"/v1/jobs/{job['id']}", headers=auth(key))
    second = await api.get(f"/v1/jobs/{job['id']}?wait=5", headers=auth(key))
    match = CACHE_CONTROL.match(first.headers["cache-control"])
    assert match is not None, first.headers["cache-control"]
    assert 0 < int(match.group(1)) <= settings.result_ttl_s
    assert re.fullmatch(r'"[0-9a-f]{32}"', first.headers["etag"])
    assert first.json() == second.json() == job
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["etag"] == second.headers["etag"]
    assert first.headers["vary"] == "Authorization, X-API-Key"


async def test_if_none_match_answers_304(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """If-None-Match with the ETag (alone, weak-prefixed, in a list, or `*`) gets an empty
    304 that repeats the validators; another ETag gets the full 200."""
    key = await issue_key("acme")
    job = await completed_job(api, key)
    url = f"/v1/jobs/{job['id']}"
    etag = (await api.get(url, headers=auth(key))).headers["etag"]
    forms = [etag, f"W/{etag}", f'"other", {etag}', "*"]
    answers = [await api.get(url, headers={**auth(key), "If-None-Match": f}) for f in forms]
    stale = await api.get(url, headers={**auth(key), "If-None-Match": '"0000"'})
    assert [r.status_code for r in answers] == [304, 304, 304, 304]
    assert [r.content for r in answers] == [b""] * 4
    assert {r.headers["etag"] for r in answers} == {etag}
    assert all(CACHE_CONTROL.match(r.headers["cache-control"]) for r in answers)
    assert (stale.status_code, stale.headers["etag"], stale.json()) == (200, etag, job)


async def test_max_age_is_the_time_left_to_live(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], redis: Redis, keys: Keys
) -> None:
    """A terminal job's max-age is the seconds its record has left, not the full TTL
    (here a cancelled job, terminal without any worker)."""
    key = await issue_key("acme")
    job_id = await queued_job(api, key)
    cancelled = await api.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key))
    await redis.expire(keys.job(job_id), 100)
    got = await api.get(f"/v1/jobs/{job_id}", headers=auth(key))
    match = CACHE_CONTROL.match(got.headers["cache-control"])
    assert cancelled.json()["status"] == "cancelled"
    assert match is not None, got.headers["cache-control"]
    assert 95 <= int(match.group(1)) <= 100
    assert "etag" in got.headers


async def test_unfinished_job_is_no_store(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """A queued job (no worker runs) is `no-store`, has no ETag, and If-None-Match never
    turns it into a 304."""
    key = await issue_key("acme")
    job_id = await queued_job(api, key)
    got = await api.get(f"/v1/jobs/{job_id}", headers=auth(key))
    starred = await api.get(f"/v1/jobs/{job_id}", headers={**auth(key), "If-None-Match": "*"})
    assert got.json()["status"] == "queued"
    assert got.headers["cache-control"] == "no-store"
    assert "etag" not in got.headers
    assert (starred.status_code, starred.headers["cache-control"]) == (200, "no-store")


async def test_another_tenant_gets_404_even_with_the_etag(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """Another tenant asking for a completed job, with or without its ETag, gets the same
    uncacheable 404 as for an unknown id: no 304 reveals that the job exists."""
    owner, other = await issue_key("acme"), await issue_key("globex")
    job = await completed_job(api, owner)
    url = f"/v1/jobs/{job['id']}"
    etag = (await api.get(url, headers=auth(owner))).headers["etag"]
    plain = await api.get(url, headers=auth(other))
    conditional = await api.get(url, headers={**auth(other), "If-None-Match": etag})
    via_header = await api.get(url, headers={"X-API-Key": other, "If-None-Match": etag})
    assert [plain.status_code, conditional.status_code, via_header.status_code] == [404] * 3
    assert not {"etag", "cache-control"} & set(plain.headers)
    assert plain.json()["type"].endswith("not-found")
