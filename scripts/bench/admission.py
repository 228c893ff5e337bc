"""Benchmark of the submit path's cost: Redis round trips and latency of an admitted job, a
request shed by admission control, a concurrency refusal, and a cache hit at submit.

Runs the API in-process (no HTTP server, no worker) on Redis DB 14, counts the commands
each request sends to Redis with `MONITOR`, and times N requests of each kind. Writes a
Markdown section to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from api.app import create_app
from scripts.bench.reportfile import markers, write_section
from scripts.bench.stack import KEY_PREFIX as PREFIX
from scripts.bench.stack import REDIS_URL  # the benchmarks' DB: flushed at start and end
from shared.apikeys import ApiKeyStore
from shared.config import Settings
from shared.redis_keys import Keys

DB = int(REDIS_URL.rsplit("/", 1)[1])  # MONITOR counts commands on this DB only


def _background(command: str) -> bool:
    """A command of the API's gauge refresher (shared/metrics.py: queue depths, today's
    service spend), which the submit path never sends itself (its checks run in Lua)."""
    name, _, key = command.partition(" ")
    return (name == "ZCARD" and ":queue:" in key) or (name == "GET" and ":spend:" in key)


async def count_commands(redis_url: str, action: Callable[[], Awaitable[Any]]) -> int:
    """Round trips to Redis (commands sent by clients on DB 14) that `action` caused."""
    monitor_client = Redis.from_url(redis_url)
    seen = 0
    ready = asyncio.Event()

    async def watch() -> None:
        nonlocal seen
        async with monitor_client.monitor() as monitor:
            ready.set()
            async for command in monitor.listen():
                # commands a script runs show up too, from client "lua": not round trips;
                # the API's gauge refresher (every 5 s) is no request's cost either
                if (
                    command.get("db") == DB
                    and command.get("client_type") != "lua"
                    and not _background(str(command.get("command", "")))
                ):
                    seen += 1

    watcher = asyncio.create_task(watch())
    await ready.wait()
    await asyncio.sleep(0.2)  # MONITOR is in place once its OK has come back
    await action()
    await asyncio.sleep(0.2)  # let the last replies reach the monitor
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await monitor_client.aclose()
    return seen


@contextlib.asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://bench"
        ) as client,
    ):
        yield client


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(
    n: int, call: Callable[[int], Awaitable[httpx.Response]], status: int
) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        response = await call(i)
        out.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == status, response.text
    return out


async def run(n: int) -> list[tuple[str, int, list[float]]]:
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    await redis.flushdb()
    settings = Settings(
        _env_file=None,
        redis_url=REDIS_URL,
        key_prefix=PREFIX,
        log_level="error",
        max_queue_depth=10,
        default_rpm=0,
    )
    store = ApiKeyStore(redis, Keys(PREFIX))
    free, _ = await store.create("bench")
    capped, _ = await store.create("bench", max_concurrent=1)
    rows: list[tuple[str, int, list[float]]] = []
    try:
        async with app_client(settings) as api:

            def post(key: str, question: str, **body: Any) -> Awaitable[httpx.Response]:
                return api.post(
                    "/v1/jobs",
                    json={"question": question, "temperature": 0.5, **body},
                    headers={"Authorization": f"Bearer {key}"},
                )

            # admitted: a fresh queue each time, so every one is accepted
            async def admitted(i: int) -> httpx.Response:
                response = await post(free, f"q{i}", priority="batch")
                await redis.delete(Keys(PREFIX).queue("batch"))
                return response

            rows.append(("admitted (temperature > 0)", 0, await timed(n, admitted, 202)))
            for i in range(10):
                await post(free, f"fill {i}")  # the interactive queue is now full
            rows.append(
                ("shed: 429 overloaded", 0, await timed(n, lambda i: post(free, f"s{i}"), 429))
            )
            await post(capped, "holds the only lease", priority="batch")
            rows.append(
                (
                    "refused: 429 concurrency cap",
                    0,
                    await timed(n, lambda i: post(capped, f"c{i}", priority="batch"), 429),
                )
            )
            # a cache hit: plant an answer for a temperature-0 request, as a worker would
            from shared.answercache import AnswerCache, request_digest
            from shared.schemas.jobs import JobCreate

            cache = AnswerCache(redis, Keys(PREFIX), ttl_s=600)
            digest = request_digest(JobCreate(question="cached?"), settings)
            answer = {"answer": "yes", "citations": [], "model": "m"}
            await cache.put("bench", "0", prompt="p", request=digest, answer=answer)
            rows.append(
                (
                    "cache hit at submit (temperature 0)",
                    0,
                    await timed(n, lambda i: post(free, "cached?", temperature=0), 202),
                )
            )
            counts = [
                await count_commands(REDIS_URL, lambda: post(free, "counted", priority="batch")),
                await count_commands(REDIS_URL, lambda: post(free, "one more")),
                await count_commands(
                    REDIS_URL, lambda: post(capped, "and another", priority="batch")
                ),
                await count_commands(REDIS_URL, lambda: post(free, "cached?", temperature=0)),
            ]
            rows = [
                (name, count, times) for (name, _, times), count in zip(rows, counts, strict=True)
            ]
    finally:
        await redis.flushdb()
        await redis.aclose()
    return rows


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, {platform.system()}"
    )


def section(rows: list[tuple[str, int, list[float]]], n: int) -> str:
    begin, end = markers("admission")
    lines = [
        begin,
        "## Submit path: Redis commands and latency per request",
        "",
        f"`python scripts/bench/admission.py --n {n}` — machine: {machine()}; Redis 7 on loopback;",
        "the API in-process (httpx ASGI transport, no HTTP server), no worker. Commands are",
        "counted with `MONITOR`, client commands only (what a Lua script runs inside Redis is",
        "not counted; each command of a pipeline is, though the pipeline is one round trip: the",
        "cache hit's usage counters are one pipeline of 5). Every authenticated request costs one",
        "key lookup (plus one rate",
        "limit script when the key has a limit; these keys have none); the admission decision",
        "is then the one submit script, plus the cache lookup for a temperature-0 request.",
        "",
        "| request | Redis commands sent | p50 ms | p95 ms |",
        "|---|---:|---:|---:|",
    ]
    for name, count, times in rows:
        p50, p95 = statistics.median(times), percentile(times, 0.95)
        lines.append(f"| {name} | {count} | {p50:.2f} | {p95:.2f} |")
    lines.append(end)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=300, help="requests per kind")
    parser.add_argument("--out", default="docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.n))
    text = section(rows, args.n)
    print(text)
    write_section(Path(args.out), text, "admission")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
