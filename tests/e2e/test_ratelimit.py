"""Real processes over HTTP: one key's rate limit is shared by every `ragq serve` process."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Stack, auth

pytestmark = pytest.mark.e2e


async def test_two_api_processes_share_one_keys_limit(stack: Stack) -> None:
    """20 requests of a key with --rpm 10, alternating between two API processes: the first
    10 are admitted with Remaining counting down 9…0 across both, the next 10 are 429."""
    await stack.start_worker()
    await stack.start_api()
    second_url = await stack.serve("api2")
    key = await stack.create_key("acme", "--rpm", "10")
    async with (
        httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=30) as one,
        httpx.AsyncClient(base_url=second_url, headers=auth(key), timeout=30) as two,
    ):
        responses = [await (one, two)[i % 2].get("/v1/documents") for i in range(20)]
    statuses = [r.status_code for r in responses]
    remaining = [int(r.headers["ratelimit-remaining"]) for r in responses]
    assert second_url != stack.url
    assert statuses == [200] * 10 + [429] * 10, stack.log_tails()
    assert remaining == [*range(9, -1, -1), *[0] * 10]
    assert all(int(r.headers["retry-after"]) >= 1 for r in responses[10:])
