"""How a test LLM reply ends: it runs until it is done, the client disconnects or the
server shuts down, whichever comes first. A connection is cut on purpose by `cut`, on the
transport uvicorn serves it on (`with_transport` puts it in the scope): closed (FIN) or
reset (RST), before or after the response started. Without a transport (an app not served
by uvicorn) `AbruptClose` is raised out of the ASGI app instead, and uvicorn is kept from
logging that as an error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Coroutine
from typing import Any, Literal

from starlette.types import ASGIApp, Receive, Scope, Send

Outcome = Literal["done", "dropped", "disconnected", "closing"]
TRANSPORT = "testllm.transport"  # the scope key of the connection's asyncio transport
_CUT_WAIT_S = 5.0  # how long a cut waits for uvicorn to see the connection gone


class AbruptClose(Exception):
    """Raised out of the ASGI app to make uvicorn close the connection mid-response."""


class _QuietAbruptClose(logging.Filter):
    """Keep uvicorn from logging our deliberate `AbruptClose` as an application error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, AbruptClose)


def install_log_filter() -> None:
    """Keep uvicorn's error log free of the connections we cut on purpose."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietAbruptClose) for f in logger.filters):
        logger.addFilter(_QuietAbruptClose())


def with_transport(app: ASGIApp) -> ASGIApp:
    """`app` with the connection's transport in its scope under `TRANSPORT`, when the
    server's `send` is a bound method of an object holding it (uvicorn's request cycle)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is not None and hasattr(transport, "abort"):
            scope[TRANSPORT] = transport
        await app(scope, receive, send)

    return wrapped


async def cut(scope: Scope, receive: Receive, how: Literal["close", "reset"]) -> bool:
    """Cut the request's connection: "close" sends a FIN after the bytes already written,
    "reset" an RST (SO_LINGER 0), discarding any not yet sent. Returns once the server has
    seen the connection go (so it writes nothing more, not even a 500), or False at once
    when the scope has no transport to cut."""
    transport = scope.get(TRANSPORT)
    if transport is None:
        return False
    if how == "reset":
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_CUT_WAIT_S):
            await _wait_disconnect(receive)
    return True


async def forever() -> None:
    """Stall until cancelled."""
    await asyncio.get_running_loop().create_future()


async def sleep_ms(ms: float) -> None:
    """An injected latency, in milliseconds (none when 0)."""
    if ms > 0:
        await asyncio.sleep(ms / 1000)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def guard(
    job: Coroutine[Any, Any, None], receive: Receive, closing: asyncio.Event
) -> Outcome:
    """Run `job` until it ends, the client disconnects or the server shuts down.

    The job is cancelled and awaited before this returns, so nothing it does (such as
    counting tokens) can happen after the outcome is known.
    """
    job_task = asyncio.ensure_future(job)
    disconnect_task = asyncio.ensure_future(_wait_disconnect(receive))
    closing_task = asyncio.ensure_future(closing.wait())
    tasks = (job_task, disconnect_task, closing_task)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if job_task.done() and not job_task.cancelled():
        exc = job_task.exception()
        if exc is None:
            return "done"
        if isinstance(exc, AbruptClose):
            return "dropped"
        raise exc
    if disconnect_task.done() and not disconnect_task.cancelled():
        return "disconnected"
    return "closing"
