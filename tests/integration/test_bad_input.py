"""Bad input from outside is a 4xx problem, never a 500 (issue #15), and an event stream
ends instead of hanging or crashing (issue #10): deep nesting, odd event ids, filter keys
the vector store cannot express, wrongly typed JSON, oversized headers, a Redis outage."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message

from shared.apikeys import ApiKeyStore
from shared.redis_keys import Keys
from tests.conftest import MakeSettings, api_with, app_with
from tests.integration.conftest import auth, finished, ingest, sse_events

pytestmark = pytest.mark.integration

VALIDATION = (422, "application/problem+json", "validation-error")
JSON = {"Content-Type": "application/json"}
HANG_GUARD_S = 30  # seconds; fails a stream that never ends well before pytest's timeout


def nested(depth: int, *, leaf: str = "1", array: bool = False) -> str:
    """JSON text of `depth` nested objects (`{"a": {"a": …}}`) or arrays around `leaf`; built
    as text, since json.dumps itself recurses."""
    if array:
        return "[" * depth + leaf + "]" * depth
    return '{"a":' * depth + leaf + "}" * depth


def problem(response: httpx.Response) -> tuple[int, str, str]:
    """Status, content type and problem type suffix of a response."""
    kind = response.json().get("type", "") if response.content else ""
    return response.status_code, response.headers["content-type"], kind.rsplit("/", 1)[-1]


async def queued_job(api: httpx.AsyncClient, key: str) -> str:
    """A job that stays queued (no worker runs): its stream holds only event 1, job.queued."""
    response = await api.post("/v1/jobs", json={"question": "q"}, headers=auth(key))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def cancelled_job(api: httpx.AsyncClient, key: str) -> str:
    """A terminal job without a worker: events 1 job.queued and 2 job.cancelled."""
    job_id = await queued_job(api, key)
    cancel = await api.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key))
    assert cancel.status_code == 200, cancel.text
    return job_id


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


# --- 3: Last-Event-ID that is not made of ASCII digits; 4: ids past 64 bits --------------


@pytest.mark.parametrize(
    "last_event_id",
    [b"\xb2", b"1\xb9", b"1.5", b"-1", b"9" * 5000, str(2**64).encode(), b" "],
    ids=[
        "superscript",
        "digit-superscript",
        "decimal",
        "negative",
        "5000-digits",
        "2**64",
        "blank",
    ],
)
async def test_last_event_id_that_is_not_an_event_number_is_a_422(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], last_event_id: bytes
) -> None:
    """A Last-Event-ID other than ASCII digits 0 to 2^64 - 1 (`²`, 5000 digits, 2^64) gets 422."""
    key = await issue_key("acme")
    job_id = await cancelled_job(api, key)
    headers = {b"Authorization": f"Bearer {key}".encode(), b"Last-Event-ID": last_event_id}
    response = await api.get(f"/v1/jobs/{job_id}/events", headers=headers)
    assert problem(response) == VALIDATION


@pytest.mark.parametrize(
    "starting_after", [str(2**64), "9" * 5000, "²"], ids=["2**64", "5000-digits", "superscript"]
)
async def test_starting_after_past_64_bits_is_a_422(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], starting_after: str
) -> None:
    """?starting_after of 2^64 or more (a Redis stream id holds 64 bits) gets 422."""
    key = await issue_key("acme")
    job_id = await cancelled_job(api, key)
    response = await api.get(
        f"/v1/jobs/{job_id}/events", params={"starting_after": starting_after}, headers=auth(key)
    )
    assert problem(response) == VALIDATION


# --- #10: the stream of a finished job ends; a resume point past a live job's end -------


@pytest.mark.parametrize("last_event_id", ["2", "3", str(2**64 - 1)], ids=["end", "past", "max"])
async def test_resuming_at_or_after_a_finished_jobs_end_closes_at_once(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], last_event_id: str
) -> None:
    """Resuming at or past a finished job's terminal event gives an empty 200 stream that ends."""
    key = await issue_key("acme")
    job_id = await cancelled_job(api, key)
    headers = {**auth(key), "Last-Event-ID": last_event_id}
    # a hang guard, not a measure: the stream ends at once or never (it used to ping forever)
    async with asyncio.timeout(HANG_GUARD_S):
        response = await api.get(f"/v1/jobs/{job_id}/events", headers=headers)
    assert (response.status_code, response.text) == (200, "")


async def test_resuming_before_a_finished_jobs_end_replays_the_rest(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """Resuming after event 1 of a cancelled job replays exactly its terminal event."""
    key = await issue_key("acme")
    job_id = await cancelled_job(api, key)
    events = await sse_events(api, key, job_id, starting_after=1)
    assert [(seq, name) for seq, name, _ in events] == [(2, "job.cancelled")]


def _request_then_hang_up(
    until: Callable[[], Awaitable[object]],
) -> Callable[[], Awaitable[Message]]:
    """An ASGI `receive` that gives a GET's empty body, then disconnects once `until()` is done."""
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await until()
        return {"type": "http.disconnect"}

    return receive


async def _status_of_stream(app: ASGIApp, path: str, headers: dict[str, str]) -> int:
    """The status an event stream answers with, read from its `http.response.start`,
    then hang up (httpx's ASGI transport would wait for the end of a stream that may not end)."""
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    receive = _request_then_hang_up(lambda: started)  # once the status is known

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and not started.done():
            started.set_result(message["status"])

    async def serve() -> None:
        await app(_http_scope(path, headers), receive, send)

    serving = asyncio.create_task(serve())
    status = await started
    await serving  # the disconnect ends a stream that did open
    return status


def _http_scope(path: str, headers: dict[str, str]) -> dict[str, Any]:
    """An ASGI HTTP scope of a GET, as a server builds it."""
    raw_path, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("ragq.test", 80),
    }


@pytest.mark.parametrize("resume", ["header", "query"])
async def test_resuming_past_a_running_jobs_last_event_is_a_422(
    make_settings: MakeSettings, redis: Redis, issue_key: Callable[..., Any], resume: str
) -> None:
    """Resuming after an event a queued job has not reached gets 422, not a stream left waiting."""
    key = await issue_key("acme")
    async with app_with(make_settings()) as (app, api):
        job_id = await queued_job(api, key)
        path = f"/v1/jobs/{job_id}/events" + ("?starting_after=2" if resume == "query" else "")
        headers = {**auth(key), **({"Last-Event-ID": "2"} if resume == "header" else {})}
        status = await _status_of_stream(app, path, headers)
    assert status == 422


# --- 4: a stream cut by a Redis outage ends cleanly -----------------------------------


@contextlib.asynccontextmanager
async def private_redis() -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A redis-server of this test's own on a Unix socket (so it can be stopped without
    touching the shared one); yields its URL and process."""
    with tempfile.TemporaryDirectory(prefix="ragq-") as folder:  # short: socket paths ≤ 107
        socket = Path(folder) / "redis.sock"
        process = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        async for line in process.stdout:  # 7.0 says "ready to accept connections at <path>"
            if b"ready to accept connections" in line.lower():
                break
        else:
            pytest.fail(f"redis-server exited with {await process.wait()} before it was ready")
        try:
            yield f"unix://{socket}", process
        finally:
            if process.returncode is None:
                process.terminate()
                await process.wait()


async def test_redis_outage_ends_a_live_stream_with_one_warning(
    make_settings: MakeSettings,
) -> None:
    """Redis going away under a live stream ends it cleanly, with one warning."""
    async with private_redis() as (url, server):
        settings = make_settings(redis_url=url, redis_timeout_s=1.0)
        seeding = Redis.from_url(url, decode_responses=True)
        key, _ = await ApiKeyStore(seeding, Keys(settings.key_prefix)).create("acme")
        await seeding.aclose()
        async with app_with(settings) as (app, api):
            job_id = await queued_job(api, key)
            with structlog.testing.capture_logs() as logs:
                body = await _stream_until_outage(
                    app, f"/v1/jobs/{job_id}/events", auth(key), server
                )
    warnings = [(e["event"], e["log_level"]) for e in logs if e.get("job_id") == job_id]
    events = [line for line in body.splitlines() if line.startswith(("id:", "event:"))]
    assert events == ["id: 1", "event: job.queued"]
    assert warnings == [("sse.redis_unavailable", "warning")]


async def _stream_until_outage(
    app: ASGIApp, path: str, headers: dict[str, str], server: asyncio.subprocess.Process
) -> str:
    """Drive an event stream through the ASGI app; stop the Redis server as soon as the first
    event arrives; return the whole body once the app ends the response (the app raising
    fails the test, as it would reach the server)."""
    chunks: list[bytes] = []
    ended = asyncio.Event()
    receive = _request_then_hang_up(ended.wait)

    async def send(message: Message) -> None:
        if message["type"] != "http.response.body":
            return
        chunks.append(message.get("body", b""))
        if b"event: job.queued" in b"".join(chunks) and server.returncode is None:
            server.terminate()  # the outage: Redis is gone for every connection
            await server.wait()
        if not message.get("more_body", False):
            ended.set()

    await app(_http_scope(path, headers), receive, send)
    return b"".join(chunks).decode()


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


# --- 7c: request headers over the limit ----------------------------------------------


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
