"""Whether the port `ragq dev` would give its API is free, and if not, who holds it: a
second `ragq dev` must refuse before it starts anything, not print a curl that reaches the
first one."""

from __future__ import annotations

import asyncio
import errno
import socket

import httpx

PORT_IN_USE = 1  # `ragq dev`'s exit code when the port is taken
PROBE_TIMEOUT_S = 3.0


def _bind_fails(host: str, port: int) -> bool:
    """True when a listening socket could not be bound there, as uvicorn binds it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # uvicorn sets it too
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


async def _is_ragq(url: str) -> bool:
    """Whether `url` answers like ragq: `/readyz` with its `checks` of Redis and workers."""
    try:
        async with httpx.AsyncClient(base_url=url, timeout=PROBE_TIMEOUT_S) as client:
            body = (await client.get("/readyz")).json()
    except (httpx.HTTPError, ValueError):
        return False
    checks = body.get("checks") if isinstance(body, dict) else None
    return isinstance(checks, dict) and {"redis", "workers"} <= checks.keys()


async def port_in_use(host: str, port: int) -> str | None:
    """None when `host:port` is free; else the line saying who holds it and what to do."""
    if port == 0 or not await asyncio.to_thread(_bind_fails, host, port):
        return None
    url = f"http://{host}:{port}"
    if await _is_ragq(url):
        who = f"another ragq is already running there ({url}): use it, or stop it"
    else:
        who = "another program listens there (it does not answer like ragq): stop it"
    return (
        f"port {port} on {host} is in use: {who}, or choose another port with "
        f"`ragq dev --port N` (or RAGQ_PORT=N). Nothing was started."
    )
