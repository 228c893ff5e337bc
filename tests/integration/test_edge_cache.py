"""HTTP caching of `GET /v1/jobs/{id}` through the nginx edge (deploy/nginx/ragq.conf): a
terminal job is cached per credential and revalidated, an unfinished one never stored, and
events stream through unbuffered."""

from __future__ import annotations

import asyncio
import json
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
from tests.integration.cachedjobs import completed_job, queued_job
from tests.integration.conftest import auth

pytestmark = pytest.mark.integration

NGINX_DIR = Path(__file__).resolve().parents[2] / "deploy" / "nginx"
# ragq.conf holds an entry 60 s before revalidating, as the edge does here; the revalidation
# test shortens it to 1 s to see it happen (a test parametrizes `edge_ttl_s`)
EDGE_TTL_S = 60
SHORT_TTL_S = 1
WAIT_S = 60  # for a process to start or an event to arrive: far beyond any machine's need


@pytest.fixture
def edge_ttl_s() -> int:
    """How long the edge holds an entry before revalidating it."""
    return EDGE_TTL_S


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def edge(
    settings: Settings, redis: Redis, tmp_path: Path, edge_ttl_s: int
) -> AsyncIterator[httpx.AsyncClient]:
    """The API served by uvicorn on a loopback port, behind a real nginx running ragq.conf
    (cache and logs in tmp_path, the edge's TTL `edge_ttl_s`); yields a client of
    the edge. Skipped when nginx is not installed."""
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("nginx absent (Debian: apt-get install nginx)")
    from api.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None, ws="none")
    )
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT_S):
        while not server.started:
            await asyncio.sleep(0.01)
    api_port = server.servers[0].sockets[0].getsockname()[1]
    edge_port = _free_port()
    conf = (NGINX_DIR / "ragq.conf").read_text()
    for old, new in {
        "/var/cache/nginx/ragq": str(tmp_path / "cache"),
        "/var/log/nginx/access.log": str(tmp_path / "access.log"),
        "listen 80;": f"listen 127.0.0.1:{edge_port};",
        "proxy_cache_valid 200 60s;": f"proxy_cache_valid 200 {edge_ttl_s}s;",
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
            async with asyncio.timeout(WAIT_S):
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
    job = await completed_job(edge, key)
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
    job_id = await queued_job(edge, key)
    reads = [await edge.get(f"/v1/jobs/{job_id}", headers=auth(key)) for _ in range(3)]
    assert [r.headers["x-cache-status"] for r in reads] == ["MISS"] * 3
    assert {r.headers["cache-control"] for r in reads} == {"no-store"}


async def _read_until(
    edge: httpx.AsyncClient, url: str, key: str, done: Callable[[httpx.Response], bool]
) -> httpx.Response:
    """Read `url` through the edge until `done` holds (for at most WAIT_S)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not done(response := await edge.get(url, headers=auth(key))):
        assert loop.time() < deadline, "the edge kept serving its stored entry"
        await asyncio.sleep(0.1)
    return response


@pytest.mark.parametrize("edge_ttl_s", [SHORT_TTL_S])
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
    job = await completed_job(edge, key)
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
    removed, so this guards the route, not the directive: test_deploy_nginx checks that.)"""
    key = await issue_key("acme")
    job_id = await queued_job(edge, key)
    streams = [
        edge.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth(key)),
        edge.stream("POST", "/v1/rag", json={"question": "hi", "stream": True}, headers=auth(key)),
    ]
    seen: list[list[str]] = []
    for stream in streams:
        async with stream as response:
            lines = response.aiter_lines()
            async with asyncio.timeout(WAIT_S):  # the job stays queued: the stream is still open
                first = await _next_event(lines)
            await edge.post(f"/v1/jobs/{first[1]['job_id']}/cancel", headers=auth(key))
            async with asyncio.timeout(WAIT_S):
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
