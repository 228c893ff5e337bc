"""HTTP caching of `GET /v1/jobs/{id}`: terminal jobs are immutable (ETag, 304, max-age of
their remaining TTL), unfinished ones are never stored, and caching never crosses tenants."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from shared.apikeys import ApiKeyStore
from shared.config import Settings
from shared.redis_keys import Keys
from tests.integration.conftest import auth, finished, ingest

pytestmark = pytest.mark.integration

DOC = {
    "id": "rotation",
    "title": "Key rotation",
    "text": "Rotate keys with vault keys rotate. Pinned consumers fail with VLT-4031.",
}
CACHE_CONTROL = re.compile(r"^private, max-age=(\d+), immutable$")


async def _completed_job(api: httpx.AsyncClient, key: str) -> dict[str, Any]:
    await ingest(api, key, DOC)
    posted = await api.post("/v1/jobs", json={"question": "What is VLT-4031?"}, headers=auth(key))
    job = await finished(api, key, posted.json()["id"])
    assert job["status"] == "completed"
    return job


async def _queued_job(api: httpx.AsyncClient, key: str) -> str:
    posted = await api.post("/v1/jobs", json={"question": "still waiting?"}, headers=auth(key))
    assert posted.status_code == 202, posted.text
    return str(posted.json()["id"])


async def test_completed_job_has_a_stable_strong_etag(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None, settings: Settings
) -> None:
    """Two GETs of a completed job carry the same strong ETag and a private, immutable
    Cache-Control whose max-age is at most the result TTL."""
    key = await issue_key("acme")
    job = await _completed_job(api, key)
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
    job = await _completed_job(api, key)
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
    job_id = await _queued_job(api, key)
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
    job_id = await _queued_job(api, key)
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
    job = await _completed_job(api, owner)
    url = f"/v1/jobs/{job['id']}"
    etag = (await api.get(url, headers=auth(owner))).headers["etag"]
    plain = await api.get(url, headers=auth(other))
    conditional = await api.get(url, headers={**auth(other), "If-None-Match": etag})
    via_header = await api.get(url, headers={"X-API-Key": other, "If-None-Match": etag})
    assert [plain.status_code, conditional.status_code, via_header.status_code] == [404] * 3
    assert not {"etag", "cache-control"} & set(plain.headers)
    assert plain.json()["type"].endswith("not-found")


# --- through the nginx edge (deploy/nginx/ragq.conf) ----------------------------------------

NGINX_DIR = Path(__file__).resolve().parents[2] / "deploy" / "nginx"
EDGE_TTL_S = 1  # ragq.conf holds an entry 60 s before revalidating; 1 s here, to see it happen


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def edge(
    settings: Settings, redis: Redis, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The API served by uvicorn on a loopback port, behind a real nginx running ragq.conf
    (cache and logs in tmp_path, the edge's TTL shortened to EDGE_TTL_S); yields a client of
    the edge. Skipped when nginx is not installed."""
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("nginx absent (Debian: apt-get install nginx)")
    from api.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None, ws="none")
    )
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    api_port = server.servers[0].sockets[0].getsockname()[1]
    edge_port = _free_port()
    conf = (NGINX_DIR / "ragq.conf").read_text()
    for old, new in {
        "/var/cache/nginx/ragq": str(tmp_path / "cache"),
        "/var/log/nginx/access.log": str(tmp_path / "access.log"),
        "listen 80;": f"listen 127.0.0.1:{edge_port};",
        "proxy_cache_valid 200 60s;": f"proxy_cache_valid 200 {EDGE_TTL_S}s;",
    }.items():
        assert old in conf
        conf = conf.replace(old, new)
    (tmp_path / "ragq.conf").write_text(conf)
    (tmp_path / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n"
        f"  include {tmp_path}/ragq.conf;\n"
        f"  upstream ragq_api {{ server 127.0.0.1:{api_port}; keepalive 8; }}\n}}\n"
    )
    process = await asyncio.create_subprocess_exec(
        nginx,
        "-p",
        str(tmp_path),
        "-e",
        str(tmp_path / "error.log"),
        "-c",
        str(tmp_path / "nginx.conf"),
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge_port}") as client:
            async with asyncio.timeout(10):
                while True:
                    try:
                        await client.get("/healthz")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
            yield client
    finally:
        process.terminate()
        await process.wait()
        server.should_exit = True
        await serving


async def test_edge_caches_a_terminal_job_per_credential(
    edge: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """Through nginx: a completed job is a HIT on the second read by the same key, with this
    request's X-Request-ID and no stale RateLimit-*; another tenant's key gets its own 404,
    the same tenant's key sent as X-API-Key its own MISS, and If-None-Match a 304."""
    key, other = await issue_key("acme", rpm=1000), await issue_key("globex", rpm=1000)
    job = await _completed_job(edge, key)
    url = f"/v1/jobs/{job['id']}"
    first = await edge.get(url, headers={**auth(key), "X-Request-ID": "edge-1"})
    second = await edge.get(url, headers={**auth(key), "X-Request-ID": "edge-2"})
    stranger = await edge.get(url, headers=auth(other))
    stranger_again = await edge.get(url, headers=auth(other))
    as_header = await edge.get(url, headers={"X-API-Key": key})
    conditional = await edge.get(url, headers={**auth(key), "If-None-Match": first.headers["etag"]})
    assert [first.headers["x-cache-status"], second.headers["x-cache-status"]] == ["MISS", "HIT"]
    assert first.json() == second.json() == job
    assert first.headers["etag"] == second.headers["etag"]
    assert [first.headers["x-request-id"], second.headers["x-request-id"]] == ["edge-1", "edge-2"]
    assert "ratelimit-remaining" in first.headers
    assert "ratelimit-remaining" not in second.headers
    assert [stranger.status_code, stranger_again.status_code] == [404, 404]
    assert stranger_again.headers["x-cache-status"] == "MISS"
    assert (as_header.status_code, as_header.headers["x-cache-status"]) == (200, "MISS")
    assert (conditional.status_code, conditional.headers["x-cache-status"]) == (304, "HIT")


async def test_edge_never_stores_an_unfinished_job(
    edge: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """Through nginx: a queued job (no worker) reaches the API on every read."""
    key = await issue_key("acme")
    job_id = await _queued_job(edge, key)
    reads = [await edge.get(f"/v1/jobs/{job_id}", headers=auth(key)) for _ in range(3)]
    assert [r.headers["x-cache-status"] for r in reads] == ["MISS"] * 3
    assert {r.headers["cache-control"] for r in reads} == {"no-store"}


async def _read_until(
    edge: httpx.AsyncClient, url: str, key: str, done: Callable[[httpx.Response], bool]
) -> httpx.Response:
    """Read `url` through the edge until `done` holds (at most 10 edge TTLs)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10 * EDGE_TTL_S
    while not done(response := await edge.get(url, headers=auth(key))):
        assert loop.time() < deadline, "the edge kept serving its stored entry"
        await asyncio.sleep(0.1)
    return response


async def test_edge_revalidates_and_stops_serving_a_revoked_key(
    edge: httpx.AsyncClient,
    issue_key: Callable[..., Any],
    worker: None,
    redis: Redis,
    keys: Keys,
) -> None:
    """Through nginx: once its entry is older than the edge TTL, a read is revalidated with
    the ETag (the API answers 304, nginx serves the stored body); after the key is revoked,
    the next read past the TTL gets the API's 401, not the stored job."""
    key = await issue_key("acme")
    job = await _completed_job(edge, key)
    url = f"/v1/jobs/{job['id']}"
    stored = await edge.get(url, headers=auth(key))
    # the edge's TTL is a clock, not an event: read until it has lapsed, within a deadline
    revalidated = await _read_until(
        edge, url, key, lambda r: r.headers.get("x-cache-status") != "HIT"
    )
    await ApiKeyStore(redis, keys).revoke(key.split("_")[1])
    revoked = await _read_until(edge, url, key, lambda r: r.headers.get("x-cache-status") != "HIT")
    assert stored.headers["x-cache-status"] == "MISS"
    assert (revalidated.status_code, revalidated.headers["x-cache-status"]) == (200, "REVALIDATED")
    assert revalidated.json() == job
    assert revoked.status_code == 401


async def test_edge_streams_events_as_they_happen(
    edge: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """Through nginx: a queued job's first SSE event (and the first of a streaming
    POST /v1/rag) reaches the client while the stream is still open, and the cancel's
    terminal event ends it. (The API's X-Accel-Buffering: no and the edge's
    proxy_buffering off both ask for this; with nginx 1.22 events also flowed with either
    removed, so this guards the route, not the directive: test_deploy_files checks that.)"""
    key = await issue_key("acme")
    job_id = await _queued_job(edge, key)
    streams = [
        edge.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth(key)),
        edge.stream("POST", "/v1/rag", json={"question": "hi", "stream": True}, headers=auth(key)),
    ]
    seen: list[list[str]] = []
    for stream in streams:
        async with stream as response:
            lines = response.aiter_lines()
            async with asyncio.timeout(5):  # the job stays queued: the stream is still open
                first = await _next_event(lines)
            await edge.post(f"/v1/jobs/{first[1]['job_id']}/cancel", headers=auth(key))
            async with asyncio.timeout(10):
                last = await _next_event(lines)
                while last[0] != "job.cancelled":
                    last = await _next_event(lines)
            seen.append([first[0], last[0]])
    assert seen == [["job.queued", "job.cancelled"]] * 2


async def _next_event(lines: AsyncIterator[str]) -> tuple[str, dict[str, Any]]:
    """The next SSE event (name, data) from a stream's lines; pings are skipped."""
    name = ""
    async for line in lines:
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:") and name:
            return name, json.loads(line.partition(":")[2])
    raise AssertionError("the stream ended")
