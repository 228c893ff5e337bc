"""Request headers over the limit are a 431 problem, never a 500 (issue #15): one huge
header, many headers adding up, and the limit as a setting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import structlog
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from tests.conftest import MakeSettings, api_with
from tests.integration.conftest import auth
from tests.integration.problems import problem

pytestmark = pytest.mark.integration


def _requests_counted(route: str, status: str) -> float:
    """This process's count of HTTP requests for a route template and status."""
    labels = {"method": "POST", "route": route, "status": status}
    return REGISTRY.get_sample_value("ragq_http_requests_total", labels) or 0.0


async def test_one_huge_header_is_a_431_counted_by_route(
    make_settings: MakeSettings, redis: Redis, issue_key: Callable[..., Any]
) -> None:
    """A 1 MiB header gets 431 before auth, with a request id, logged and counted by route."""
    key = await issue_key("acme")
    before = _requests_counted("/v1/jobs", "431")
    async with api_with(make_settings(log_level="info")) as api:
        with structlog.testing.capture_logs() as logs:
            response = await api.post(
                "/v1/jobs",
                json={"question": "q"},
                headers={**auth(key), "X-Request-ID": "big-1", "X-Padding": "x" * 1024 * 1024},
            )
    access = [(e["route"], e["status"]) for e in logs if e["event"] == "http.request"]
    assert problem(response) == (431, "application/problem+json", "headers-too-large")
    assert (response.headers["x-request-id"], response.json()["request_id"]) == ("big-1",) * 2
    assert access == [("/v1/jobs", 431)]
    assert _requests_counted("/v1/jobs", "431") - before == 1


async def test_headers_are_limited_in_total_not_one_by_one(
    api: httpx.AsyncClient,
) -> None:
    """Forty 1 KiB headers (40 KiB in all) get 431 without a key; 30 KiB in all passes."""
    many = {f"X-Pad-{i}": "x" * 1024 for i in range(40)}
    fewer = {f"X-Pad-{i}": "x" * 1024 for i in range(30)}
    refused = await api.get("/healthz", headers=many)
    passed = await api.get("/healthz", headers=fewer)
    assert problem(refused) == (431, "application/problem+json", "headers-too-large")
    assert passed.status_code == 200


async def test_header_limit_is_a_setting(make_settings: MakeSettings, redis: Redis) -> None:
    """RAGQ_MAX_HEADER_BYTES moves the limit: at 4 KiB a 5 KiB header is a 431."""
    async with api_with(make_settings(max_header_bytes=4096)) as api:
        response = await api.get("/healthz", headers={"X-Padding": "x" * 5000})
    assert response.status_code == 431
