"""The limits of bulk loading: documents per request, body size, and bodies that cannot be
read at all, each refused whole as problem+json with nothing stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import MakeSettings, api_with
from tests.integration.conftest import auth
from tests.integration.problems import VALIDATION, problem
from tests.integration.test_documents_bulk import DOCS

pytestmark = pytest.mark.integration
JOB_LIMIT, DOCUMENT_LIMIT = 1024, 8192  # bytes: the least allowed, and 8 times it


@pytest.fixture
async def small_api(make_settings: MakeSettings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """The app with at most 2 documents per bulk request and small body limits."""
    async with api_with(
        make_settings(
            bulk_max_documents=2,
            max_job_body_bytes=JOB_LIMIT,
            max_document_body_bytes=DOCUMENT_LIMIT,
        )
    ) as client:
        yield client


@pytest.mark.parametrize(
    ("content", "content_type", "expected"),
    [
        (json.dumps({"documents": DOCS}), "application/json", 413),
        ("\n".join(json.dumps(d) for d in DOCS), "application/x-ndjson", 413),
        (json.dumps({"documents": []}), "application/json", 422),
        ("\n \n", "application/x-ndjson", 422),
        ("{not json", "application/json", 422),
        (json.dumps([DOCS[0]]), "application/json", 422),
        (json.dumps({"documents": "zephyr"}), "application/json", 422),
        (json.dumps({"documents": [DOCS[0]], "mode": "fast"}), "application/json", 422),
        (json.dumps({"documents": [DOCS[0]], "skip_unchanged": "yes"}), "application/json", 422),
        (json.dumps(DOCS[0]) + "\n{broken", "application/x-ndjson", 422),
        (b"\xff\xfe garbage", "application/x-ndjson", 422),
        ("id,title\nzephyr,Zephyr", "text/csv", 415),
    ],
)
async def test_bodies_that_cannot_be_loaded_are_refused_whole(
    small_api: httpx.AsyncClient,
    issue_key: Callable[..., Any],
    content: str | bytes,
    content_type: str,
    expected: int,
) -> None:
    """More documents than the limit is a 413 naming it; none, a body that is not JSON or
    NDJSON, or one not shaped `{"documents": [...]}` a 422; another type a 415: problem+json,
    and nothing is stored."""
    key = await issue_key("acme")
    response = await small_api.post(
        "/v1/documents/bulk", content=content, headers={**auth(key), "Content-Type": content_type}
    )
    listing = (await small_api.get("/v1/documents", headers=auth(key))).json()
    status_code, kind, _ = problem(response)
    assert (status_code, kind) == (expected, "application/problem+json")
    if expected == 413:
        assert response.json()["type"].endswith("/payload-too-large")
        assert "limit of 2" in response.json()["detail"]
    if expected == 422:
        assert problem(response) == VALIDATION
    assert listing["data"] == []


async def test_status_refuses_too_many_or_no_ids(
    small_api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """A status read of more ids than the limit is a 413, of none or with a wait past 60 s
    a 422."""
    key = await issue_key("acme")
    answers = [
        await small_api.post("/v1/documents/status", json=body, headers=auth(key))
        for body in ({"ids": ["a", "b", "c"]}, {"ids": []}, {"ids": ["a"], "wait": 61})
    ]
    assert [problem(r)[2] for r in answers] == [
        "payload-too-large",
        "validation-error",
        "validation-error",
    ]


async def test_a_bulk_body_has_the_documents_size_limit(
    small_api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """A bulk body over the jobs' limit but under the documents' one loads; one over the
    documents' limit is a 413 naming it, and nothing of it is stored."""
    key = await issue_key("acme")
    fits = [{"id": "big", "text": "word " * (JOB_LIMIT // 4)}]
    over = [{"id": "huge", "text": "word " * (DOCUMENT_LIMIT // 4)}]
    loaded = await small_api.post("/v1/documents/bulk", json={"documents": fits}, headers=auth(key))
    refused = await small_api.post(
        "/v1/documents/bulk", json={"documents": over}, headers=auth(key)
    )
    listing = (await small_api.get("/v1/documents", headers=auth(key))).json()
    assert (loaded.status_code, loaded.json()["queued"]) == (200, 1)
    assert problem(refused)[::2] == (413, "payload-too-large")
    assert f"limit of {DOCUMENT_LIMIT} bytes" in refused.json()["detail"]
    assert [d["id"] for d in listing["data"]] == ["big"]
