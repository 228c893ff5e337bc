"""Bad event-stream requests are a 422 problem, never a 500 (issue #15), and an event
stream ends instead of hanging or crashing (issue #10): odd Last-Event-IDs, resume points
past 64 bits or past a job's end, and a Redis outage under a live stream."""

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
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message

from shared.apikeys import ApiKeyStore
from shared.redis_keys import Keys
from tests.conftest import MakeSettings, app_with
from tests.integration.conftest import auth, sse_events
from tests.integration.problems import VALIDATION, problem

pytestmark = pytest.mark.integration

HANG_GUARD_S = 30  # seconds; fails a stream that never ends well before pytest's timeout


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
        # the default Redis timeout: a stopped server refuses at once, so no timeout is
        # what ends the stream, and a short one could fire on a loaded machine before it
        settings = make_settings(redis_url=url)
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
