"""The OpenAPI document is exact: every answer a route gives, error or success, has its
status, content type, required headers and body declared for its operation (issue #10
item 5). Each route's error paths are driven in-process and checked against the document."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from api.responses import numbers_up_to
from shared.schemas.common import NOT_BLANK_STRIPPED, NOT_BLANK_TRIMMED, FilterKey, TrimmedText
from tests.conftest import MakeSettings, api_with
from tests.integration.conftest import auth, finished, ingest
from tests.integration.openapi_check import Document

pytestmark = pytest.mark.integration

IssueKey = Callable[..., Awaitable[str]]
DOC = {"id": "rotation", "title": "Rotation", "text": "Rotate keys every ninety days.\n"}
CHAT = {"messages": [{"role": "user", "content": "How often are keys rotated?"}]}
JOB = "/v1/jobs/{job_id}"
EVENTS = JOB + "/events"
DOCUMENT = "/v1/documents/{document_id}"


async def _document(api: httpx.AsyncClient) -> Document:
    return Document((await api.get("/openapi.json")).json())


def _url(template: str, job_id: str = "job_missing", document_id: str = "doc_missing") -> str:
    return template.replace("{job_id}", job_id).replace("{document_id}", document_id)


async def test_every_operation_declares_the_answers_of_the_layers_in_front(
    make_settings: MakeSettings, redis: Any
) -> None:
    """No key (401), a body over the limit (413, OpenAI's body on its routes) and headers
    over theirs (431) are declared, as sent, on every operation they reach."""
    settings = make_settings(max_job_body_bytes=1024, max_document_body_bytes=1024)
    async with api_with(settings) as api:
        document = await _document(api)
        for method, template, operation in document.operations():
            url = _url(template)
            big = b"x" * 1025
            answers = [
                await api.request(method, url, content=big, headers={"X-Pad": "p" * 40_000}),
                await api.request(method, url, content=big),
            ]
            if operation.get("security"):
                answers.append(await api.request(method, url, json={}))
            for response in answers:
                document.check(method, template, response)
            assert [r.status_code for r in answers] == [431, 413, 401][: len(answers)]


async def test_error_paths_answer_as_declared(api: httpx.AsyncClient, issue_key: IssueKey) -> None:
    """404, 409, 415, 422, 400, 504 and the 304 and streams of a finished job, as the
    document declares them, with no worker (jobs stay queued until cancelled)."""
    document = await _document(api)
    headers = auth(await issue_key("acme"))
    queued = (await api.post("/v1/jobs", json={"question": "q?"}, headers=headers)).json()["id"]
    calls: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", JOB, {}, 404),
        ("POST", JOB + "/cancel", {}, 404),
        ("GET", EVENTS, {}, 404),
        ("GET", DOCUMENT, {}, 404),
        ("DELETE", DOCUMENT, {}, 404),
        ("GET", DOCUMENT + "/content", {}, 404),
        ("POST", "/v1/jobs", {"json": {"question": " "}}, 422),
        ("POST", "/v1/jobs", {"json": {"question": "q", "model": "nope"}}, 422),
        ("POST", "/v1/rag", {"json": {"question": "q", "timeout": 0}}, 422),
        ("POST", "/v1/rag", {"json": {"question": "still queued?", "timeout": 1}}, 504),
        ("GET", JOB, {"params": {"wait": 99}}, 422),
        ("GET", "/v1/documents", {"params": {"limit": 0}}, 422),
        ("POST", "/v1/documents", {"json": {"text": "\x1c "}}, 422),
        ("POST", "/v1/documents", {"content": "a,b", "headers": {"Content-Type": "text/csv"}}, 415),
        ("POST", "/v1/documents/bulk", {"json": {"documents": []}}, 422),
        (
            "POST",
            "/v1/documents/bulk",
            {"content": "{}", "headers": {"Content-Type": "text/csv"}},
            415,
        ),
        ("POST", "/v1/documents/status", {"json": {"ids": []}}, 422),
        ("POST", "/v1/chat/completions", {"json": {"messages": []}}, 400),
        ("POST", "/v1/chat/completions", {"json": {"messages": [{"role": "assistant"}]}}, 400),
    ]
    for method, template, kwargs, status in calls:
        sent = {**kwargs, "headers": {**headers, **kwargs.get("headers", {})}}
        url = _url(template, job_id="job_missing" if status == 404 else queued)
        response = await api.request(method, url, **sent)
        document.check(method, template, response)
        assert response.status_code == status, (method, template, response.text)
    resume = {**headers, "Last-Event-ID": "99"}  # past what the queued job has sent
    response = await api.get(_url(EVENTS, queued), headers=resume)
    assert response.status_code == 422
    document.check("GET", EVENTS, response)
    keyed = {**headers, "Idempotency-Key": "k1"}
    first = await api.post("/v1/jobs", json={"question": "a"}, headers=keyed)
    reused = await api.post("/v1/jobs", json={"question": "b"}, headers=keyed)
    cancelled = await api.post(_url(JOB + "/cancel", queued), headers=headers)
    again = await api.post(_url(JOB + "/cancel", queued), headers=headers)
    finished_job = await api.get(_url(JOB, queued), headers=headers)
    etag = {**headers, "If-None-Match": finished_job.headers["ETag"]}
    not_modified = await api.get(_url(JOB, queued), headers=etag)
    stream = await api.get(_url(EVENTS, queued), headers=headers)
    for method, template, response in [
        ("POST", "/v1/jobs", first),
        ("POST", "/v1/jobs", reused),
        ("POST", JOB + "/cancel", cancelled),
        ("POST", JOB + "/cancel", again),
        ("GET", JOB, finished_job),
        ("GET", JOB, not_modified),
        ("GET", EVENTS, stream),
    ]:
        document.check(method, template, response)
    answered = [first, reused, cancelled, again, finished_job, not_modified, stream]
    assert [r.status_code for r in answered] == [202, 409, 200, 409, 200, 304, 200]


async def test_rate_limited_and_redis_down_are_declared(
    api: httpx.AsyncClient, issue_key: IssueKey, make_settings: MakeSettings
) -> None:
    """A key over its rate (429 with Retry-After) and Redis down (503) on every keyed
    operation, as declared."""
    document = await _document(api)
    keyed = [(m, t) for m, t, op in document.operations() if op.get("security")]
    down = make_settings(redis_url="redis://127.0.0.1:1/0")
    statuses: set[int] = set()
    for method, template in keyed:
        headers = auth(await issue_key("acme", rpm=1))
        await api.request(method, _url(template), headers=headers, json={})
        limited = await api.request(method, _url(template), headers=headers, json={})
        document.check(method, template, limited)
        statuses.add(limited.status_code)
    async with api_with(down) as unreachable:
        for method, template in keyed:
            response = await unreachable.request(method, _url(template), headers=auth("rq_x"))
            document.check(method, template, response)
            statuses.add(response.status_code)
    assert statuses == {429, 503}


async def test_success_answers_are_declared(
    api: httpx.AsyncClient, issue_key: IssueKey, worker: None
) -> None:
    """Every route's success (JSON, multipart, NDJSON, text, streams, 202, 204), as declared."""
    document = await _document(api)
    key = await issue_key("acme")
    headers = auth(key)
    await ingest(api, key, DOC)
    job = (await api.post("/v1/jobs", json={"question": "rotate?"}, headers=headers)).json()
    await finished(api, key, job["id"])
    upload = await api.post(
        "/v1/documents",
        files={"file": ("notes.md", b"# Notes\n\nRotate often.\n")},
        data={"id": "notes", "metadata": '{"team": "infra"}'},
        headers=headers,
    )
    ndjson = {**headers, "Content-Type": "application/x-ndjson"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/healthz", {}),
        ("GET", "/readyz", {}),
        ("GET", "/metrics", {}),
        ("GET", JOB, {}),
        ("GET", EVENTS, {}),
        ("POST", "/v1/rag", {"json": {"question": "rotate?"}}),
        ("POST", "/v1/rag", {"json": {"question": "rotate?", "stream": True}}),
        ("GET", "/v1/documents", {}),
        ("GET", DOCUMENT, {}),
        ("GET", DOCUMENT + "/content", {}),
        ("POST", "/v1/documents/bulk", {"json": {"documents": [DOC, 5]}}),
        ("POST", "/v1/documents/bulk", {"content": '{"text": "x"}\n', "headers": ndjson}),
        ("POST", "/v1/documents/status", {"json": {"ids": ["rotation", "nope"], "wait": 1}}),
        ("GET", "/v1/usage", {}),
        ("GET", "/v1/models", {}),
        ("POST", "/v1/chat/completions", {"json": CHAT}),
        ("POST", "/v1/chat/completions", {"json": {**CHAT, "stream": True}}),
        ("DELETE", DOCUMENT, {}),
    ]
    document.check("POST", "/v1/documents", upload)
    statuses = [upload.status_code]
    for method, template, kwargs in calls:
        sent = {**kwargs, "headers": {**headers, **kwargs.get("headers", {})}}
        url = _url(template, job_id=job["id"], document_id="rotation")
        response = await api.request(method, url, **sent)
        document.check(method, template, response)
        statuses.append(response.status_code)
    assert statuses == [202, *[200] * 17, 204]


async def test_wrong_method_allows_exactly_the_documented_methods(api: httpx.AsyncClient) -> None:
    """A method a path does not serve is a 405 whose `Allow` lists the methods the document
    has for that path: all of them, where several routes share it."""
    document = await _document(api)
    found, expected = {}, {}
    for path, item in document.spec["paths"].items():
        response = await api.request("PUT", _url(path))
        found[path] = (response.status_code, response.headers.get("allow"))
        expected[path] = (405, ", ".join(sorted(m.upper() for m in item)))
    assert found == expected


async def test_last_event_id_is_checked_when_starting_after_wins(
    api: httpx.AsyncClient, issue_key: IssueKey
) -> None:
    """A `Last-Event-ID` that is no event number is a 422 even beside `?starting_after`."""
    headers = auth(await issue_key("acme"))
    job = (await api.post("/v1/jobs", json={"question": "q?"}, headers=headers)).json()
    response = await api.get(
        f"/v1/jobs/{job['id']}/events",
        params={"starting_after": 0},
        headers={**headers, "Last-Event-ID": "abc"},
    )
    assert (response.status_code, response.json()["errors"][0]["loc"]) == (
        422,
        ["header", "Last-Event-ID"],
    )


async def test_bulk_skip_unchanged_null_is_no_bool(
    api: httpx.AsyncClient, issue_key: IssueKey
) -> None:
    """`"skip_unchanged": null` in a bulk body is a 422, as any value that is not a bool."""
    body = {"documents": [DOC], "skip_unchanged": None}
    response = await api.post("/v1/documents/bulk", json=body, headers=auth(await issue_key("a")))
    assert (response.status_code, response.json()["errors"][0]["loc"]) == (
        422,
        ["body", "skip_unchanged"],
    )


@pytest.mark.parametrize(
    "extra", [{"tags": "x"}, {"title": ["one", "two"]}], ids=["unknown", "repeated"]
)
async def test_upload_form_takes_only_its_fields_once(
    api: httpx.AsyncClient, issue_key: IssueKey, extra: dict[str, Any]
) -> None:
    """A multipart upload with an unknown field, or a field twice, is a 422 naming it."""
    response = await api.post(
        "/v1/documents",
        files={"file": ("a.txt", b"Some text.")},
        data=extra,
        headers=auth(await issue_key("acme")),
    )
    assert (response.status_code, response.json()["errors"][0]["loc"]) == (
        422,
        ["body", next(iter(extra))],
    )


def test_document_patterns_match_what_the_server_checks() -> None:
    """The patterns the document states are the server's own rules: metadata keys without
    a control character or `"`, text not blank after its strip, event numbers to 2^64 - 1."""
    key, trimmed = TypeAdapter(FilterKey), TypeAdapter(TrimmedText)

    def key_ok(char: str) -> bool:
        try:
            key.validate_python(char)
        except ValidationError:
            return False
        return True

    chars = [chr(c) for c in [*range(0x3100), 0xFEFF, 0x1D400] if not 0xD800 <= c < 0xE000]
    pattern = re.compile(TypeAdapter(FilterKey).json_schema()["pattern"])
    assert [c for c in chars if bool(pattern.search(c)) != key_ok(c)] == []
    assert all(key_ok(c) != (unicodedata.category(c) == "Cc" or c == '"') for c in chars)
    assert [c for c in chars if bool(re.search(NOT_BLANK_STRIPPED, c)) != bool(c.strip())] == []
    assert [
        c
        for c in chars
        if bool(re.search(NOT_BLANK_TRIMMED, c)) != bool(trimmed.validate_python(c))
    ] == []
    limit = re.compile(f"(?:{numbers_up_to(2**64 - 1)})")
    samples = ["0", "007", str(2**64 - 1), str(2**64), "0" * 20, "0" * 21, "9" * 20, "1" * 19]
    assert [
        s for s in samples if bool(limit.fullmatch(s)) != (len(s) <= 20 and int(s) < 2**64)
    ] == []
