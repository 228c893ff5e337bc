"""Bad request bodies are a 422 problem, never a 500 (issue #15): JSON nested too deep,
filter and metadata keys the vector store cannot express, and values of the wrong JSON type
(no coercion)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.conftest import auth, finished, ingest
from tests.integration.problems import JSON, VALIDATION, problem

pytestmark = pytest.mark.integration


def nested(depth: int, *, leaf: str = "1", array: bool = False) -> str:
    """JSON text of `depth` nested objects (`{"a": {"a": …}}`) or arrays around `leaf`; built
    as text, since json.dumps itself recurses."""
    if array:
        return "[" * depth + leaf + "]" * depth
    return '{"a":' * depth + leaf + "}" * depth


# --- 3: deep nesting ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"text": "x", "metadata": ' + nested(1000) + "}",
        '{"text": "x", "metadata": ' + nested(150) + "}",
        '{"text": "x", "title": ' + nested(1000, leaf='"t"', array=True) + "}",
        '{"text": ' + nested(150, leaf='"t"', array=True) + "}",
    ],
    ids=["metadata-1000", "metadata-150", "title-list-1000", "text-list-150"],
)
async def test_deeply_nested_document_json_is_a_422(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], body: str
) -> None:
    """A ~2 KB document body nested 150 or 1,000 levels deep gets 422 validation-error."""
    key = await issue_key("acme")
    response = await api.post("/v1/documents", content=body.encode(), headers={**auth(key), **JSON})
    assert problem(response) == VALIDATION


@pytest.mark.parametrize("depth", [1000, 150])
async def test_deeply_nested_multipart_metadata_is_a_422(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], depth: int
) -> None:
    """A multipart upload whose `metadata` part is nested deep gets 422, not a 500."""
    key = await issue_key("acme")
    response = await api.post(
        "/v1/documents",
        files={"file": ("notes.txt", b"hello", "text/plain")},
        data={"metadata": nested(depth)},
        headers=auth(key),
    )
    assert problem(response) == VALIDATION


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/jobs", '{"question": "q", "metadata": ' + nested(1000) + "}"),
        ("/v1/jobs", '{"question": "q", "metadata": ' + nested(300) + "}"),
        ("/v1/jobs", '{"question": "q", "metadata": ' + nested(9) + "}"),
        ("/v1/jobs", '{"question": "q", "filters": {"a": ' + nested(300, array=True) + "}}"),
        ("/v1/jobs", '{"question": ' + nested(900, leaf='"q"', array=True) + "}"),
        ("/v1/rag", '{"question": "q", "metadata": ' + nested(300) + "}"),
    ],
    ids=["metadata-1000", "metadata-300", "metadata-9", "filters-300", "question-900", "rag"],
)
async def test_deeply_nested_job_json_is_a_422(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], path: str, body: str
) -> None:
    """A job body nested past the limits gets 422 with a problem body that serialises."""
    key = await issue_key("acme")
    response = await api.post(path, content=body.encode(), headers={**auth(key), **JSON})
    assert problem(response) == VALIDATION


async def test_job_metadata_at_the_limits_is_accepted_and_returned(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """Job metadata nested 8 levels deep is stored and returned as is; over 16 KiB is a 422."""
    key = await issue_key("acme")
    deep = (
        await api.post(
            "/v1/jobs",
            content=('{"question": "q", "metadata": ' + nested(8) + "}").encode(),
            headers={**auth(key), **JSON},
        )
    ).json()
    large = await api.post(
        "/v1/jobs",
        json={"question": "q", "metadata": {"blob": "x" * (16 * 1024)}},
        headers=auth(key),
    )
    stored = (await api.get(f"/v1/jobs/{deep['id']}", headers=auth(key))).json()
    innermost = stored["request"]["metadata"]
    for _ in range(7):
        innermost = innermost["a"]
    assert innermost == {"a": 1}
    assert problem(large) == VALIDATION


# --- 5: filter keys are checked at submit --------------------------------------------


@pytest.mark.parametrize(
    "filter_key",
    ["", 'a"b', "a\nb", "a\x00b", "a\x7fb", "k" * 129],
    ids=["empty", "quote", "newline", "nul", "del", "129-chars"],
)
async def test_filter_key_the_store_cannot_express_is_a_422(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], filter_key: str
) -> None:
    """A filter key empty, with `"` or a control character, or over 128 chars is a 422 at submit."""
    key = await issue_key("acme")
    response = await api.post(
        "/v1/jobs", json={"question": "q", "filters": {filter_key: 1}}, headers=auth(key)
    )
    locations = [e["loc"][:2] for e in response.json().get("errors", [])]
    assert problem(response) == VALIDATION
    assert locations == [["body", "filters"]]


async def test_document_metadata_key_that_no_filter_can_name_is_a_422(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """A document metadata key with `"` gets 422: every stored key can be filtered on."""
    key = await issue_key("acme")
    response = await api.post(
        "/v1/documents", json={"text": "x", "metadata": {'a"b': 1}}, headers=auth(key)
    )
    assert problem(response) == VALIDATION


async def test_filter_keys_with_spaces_dots_and_unicode_retrieve_the_document(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """Allowed keys that are not plain words (`release notes`, `a.b`) filter retrieval."""
    key = await issue_key("acme")
    metadata = {"release notes": "q3", "a.b": 1, "produit-é": True}
    await ingest(api, key, {"id": "match", "text": "Rotate keys monthly.", "metadata": metadata})
    await ingest(api, key, {"id": "other", "text": "Rotate keys monthly.", "metadata": {}})
    submitted = await api.post(
        "/v1/jobs", json={"question": "rotate keys", "filters": metadata}, headers=auth(key)
    )
    job = await finished(api, key, submitted.json()["id"])
    cited = {c["document_id"] for c in job["result"]["citations"]}
    assert (job["status"], cited) == ("completed", {"match"})


# --- 7b: no coercion of wrongly typed JSON -------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/jobs", {"question": "q", "top_k": "5"}),
        ("/v1/jobs", {"question": "q", "top_k": True}),
        ("/v1/jobs", {"question": "q", "max_tokens": "512"}),
        ("/v1/jobs", {"question": "q", "temperature": "0"}),
        ("/v1/jobs", {"question": "q", "temperature": False}),
        ("/v1/rag", {"question": "q", "stream": "false", "timeout": 1}),
        ("/v1/rag", {"question": "q", "stream": 0, "timeout": 1}),
        ("/v1/rag", {"question": "q", "timeout": "5"}),
        ("/v1/documents", {"text": "x", "title": 5}),
    ],
    ids=[
        "top_k-string",
        "top_k-bool",
        "max_tokens-string",
        "temperature-string",
        "temperature-bool",
        "stream-string",
        "stream-int",
        "timeout-string",
        "title-int",
    ],
)
async def test_wrong_json_type_is_a_422(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], path: str, body: dict[str, Any]
) -> None:
    """A value of the wrong JSON type (`"5"` or `true` for a number, ...) is a 422, not coerced."""
    key = await issue_key("acme")
    response = await api.post(path, json=body, headers=auth(key))
    assert problem(response) == VALIDATION


async def test_integers_are_valid_floats_and_the_worker_runs_the_job(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """Integers for float fields are accepted, and the worker validates and completes the job."""
    key = await issue_key("acme")
    submitted = await api.post(
        "/v1/jobs", json={"question": "q", "temperature": 1, "top_k": 3}, headers=auth(key)
    )
    rag = await api.post("/v1/rag", json={"question": "q", "timeout": 60}, headers=auth(key))
    job = await finished(api, key, submitted.json()["id"])
    assert (submitted.status_code, job["status"], job["request"]["temperature"]) == (
        202,
        "completed",
        1.0,
    )
    assert rag.status_code == 200
