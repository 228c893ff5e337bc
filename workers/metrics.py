"""A worker process's own Prometheus endpoint: `GET /metrics` on `RAGQ_WORKER_METRICS_PORT`.

A minimal HTTP/1.1 responder on the worker's event loop (`asyncio.start_server`), not
prometheus_client's threaded server: no thread to stop, and it closes with the worker.
It answers one request per connection, which is all a Prometheus scrape sends.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.config import Settings
from shared.logging import get_logger
from shared.metrics import prime_worker
from shared.tiers import llm_targets

log = get_logger("workers.metrics")

READ_TIMEOUT_S = 10.0  # a client that sends no complete request head within this is dropped


async def start_exporter(settings: Settings, queues: tuple[str, ...]) -> asyncio.Server | None:
    """Zero the worker's known series and listen on `RAGQ_HOST:RAGQ_WORKER_METRICS_PORT`;
    None when the port is 0 (off) or cannot be bound (logged: a worker that cannot export
    still answers jobs, and the scrape target shows as down)."""
    served = [t for t in llm_targets(settings).values() if t.base_urls]
    models = {m for t in served for m in t.models}
    endpoints = {u for t in served for u in t.base_urls}
    if settings.budget_policy == "fallback_model" and settings.fallback_llm_model:
        models.add(settings.fallback_llm_model)
        endpoints.update(settings.fallback_llm_base_urls)
    prime_worker(queues, sorted(models), sorted(endpoints))
    if settings.worker_metrics_port == 0:
        return None
    try:
        server = await asyncio.start_server(_respond, settings.host, settings.worker_metrics_port)
    except OSError as exc:
        log.error(
            "worker.metrics_unavailable",
            host=settings.host,
            port=settings.worker_metrics_port,
            error=str(exc),
        )
        return None
    log.info("worker.metrics_listening", host=settings.host, port=settings.worker_metrics_port)
    return server


async def _respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer `GET /metrics` (or HEAD) with the process's metrics; anything else 404/405."""
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            request_line = await reader.readline()
            while (await reader.readline()).strip():
                pass  # the headers do not matter: plain text, uncompressed, then close
        parts = request_line.decode("latin-1").split()
        method, path = (parts[0], parts[1].partition("?")[0]) if len(parts) >= 2 else ("", "")
        if path != "/metrics":
            status, body, content_type = "404 Not Found", b"not found\n", "text/plain"
        elif method not in {"GET", "HEAD"}:
            status, body, content_type = "405 Method Not Allowed", b"GET only\n", "text/plain"
        else:
            status, body, content_type = "200 OK", generate_latest(), CONTENT_TYPE_LATEST
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
        await writer.drain()
    except (TimeoutError, ConnectionError, ValueError):  # ValueError: a line over the limit
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
