"""The HTTP contract without a worker: auth, errors as problem+json, request ids, limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api.errors import OPENAI_PATHS

pytestmark = pytest.mark.integration


async def test_every_route_but_health_needs_a_key(api: httpx.AsyncClient) -> None:
    """Each OpenAPI path except /healthz, /readyz and /metrics answers 401 without a key
    (problem+json; OpenAI's error body on the OpenAI-compatible routes)."""
    spec = (await api.get("/openapi.json")).json()
    open_routes = {"/healthz", "/readyz", "/metrics"}
    checked = 0
    for path, methods in spec["paths"].items():
        if path in open_routes:
            continue
        url = path.replace("{job_id}", "job_x").replace("{document_id}", "doc_x")
        for method in methods:
            response = await api.request(method.upper(), url, json={})
            assert response.status_code == 401, (method, path, response.text)
            if path in OPENAI_PATHS:  # OpenAI's error body, for its SDKs
                assert response.json()["error"]["type"] == "authentication_error"
            else:
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["type"].endswith("/unauthorized")
            checked += 1
    assert checked >= 8


async def test_unknown_route_and_wrong_method_are_problems(api: httpx.AsyncClient) -> None:
    """FastAPI's own 404 and 405 come back as problem+json too."""
    missing = await api.get("/v1/nothing-here")
    wrong = await api.put("/healthz")
    assert (missing.status_code, missing.headers["content-type"]) == (
        404,
        "application/problem+json",
    )
    assert (wrong.status_code, wrong.json()["type"]) == (
        405,
        "https://ragq.dev/problems/method-not-allowed",
    )


async def test_validation_errors_list_each_field(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """A bad job body gets 422 with one entry per offending field, unknown fields included."""
    key = await issue_key("acme")
    body = {"question": "   ", "top_k": 99, "surprise": 1}
    response = await api.post("/v1/jobs", json=body, headers={"Authorization": f"Bearer {key}"})
    problem = response.json()
    fields = sorted(tuple(e["loc"][-1:]) for e in problem["errors"])
    assert response.status_code == 422
    assert problem["type"].endswith("/validation-error")
    assert fields == [("question",), ("surprise",), ("top_k",)]


async def test_request_id_is_echoed_or_made(api: httpx.AsyncClient) -> None:
    """A safe client X-Request-ID is echoed; an unsafe one is replaced by a fresh id."""
    echoed = await api.get("/healthz", headers={"X-Request-ID": "client-123"})
    replaced = await api.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert echoed.headers["x-request-id"] == "client-123"
    assert replaced.headers["x-request-id"].startswith("req_")


async def test_oversized_body_is_refused_before_reading(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """A job body over 1 MiB gets 413 problem+json, declared or streamed without a length."""
    key = await issue_key("acme")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    big = b'{"question": "' + b"x" * (1024 * 1024 + 10) + b'"}'

    async def chunks() -> Any:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    declared = await api.post("/v1/jobs", content=big, headers=headers)
    streamed = await api.post("/v1/jobs", content=chunks(), headers=headers)
    assert declared.status_code == 413
    assert declared.json()["type"].endswith("/payload-too-large")
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"


async def test_revoked_key_is_refused(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], redis: Any, keys: Any
) -> None:
    """Once revoked, a key answers 401."""
    from shared.apikeys import ApiKeyStore

    key = await issue_key("acme")
    headers = {"X-API-Key": key}
    before = await api.get("/v1/documents", headers=headers)
    await ApiKeyStore(redis, keys).revoke(key.split("_")[1])
    after = await api.get("/v1/documents", headers=headers)
    assert (before.status_code, after.status_code) == (200, 401)


async def test_redis_down_answers_503_not_a_500(make_settings: Any) -> None:
    """With Redis unreachable, authenticated routes answer 503 not-ready with
    Retry-After, and /readyz reports the Redis check as failing."""
    from asgi_lifespan import LifespanManager

    from api.app import create_app

    app = create_app(make_settings(redis_url="redis://127.0.0.1:1/0", redis_timeout_s=0.5))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://ragq.test"
        ) as client,
    ):
        job = await client.post("/v1/jobs", json={"question": "q"}, headers={"X-API-Key": "k"})
        ready = await client.get("/readyz")
    assert job.status_code == 503
    assert job.json()["type"].endswith("/not-ready")
    assert job.headers["retry-after"] == "1"
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] == "error"


async def test_body_that_is_not_utf8_is_a_422(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """Bytes that are not UTF-8 get 422 validation-error, not a 400 or 500."""
    key = await issue_key("acme")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    response = await api.post("/v1/jobs", content=b'{"question": "\xff\xfe"}', headers=headers)
    assert response.status_code == 422
    assert response.json()["type"].endswith("/validation-error")
