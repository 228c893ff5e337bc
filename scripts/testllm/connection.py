"""How a test LLM reply ends: it runs until it is done, the client disconnects or the
server shuts down, whichever comes first; a connection is cut on purpose by raising
`AbruptClose` out of the ASGI app (and uvicorn is kept from logging that as an error)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Literal

from starlette.types import Receive

Outcome = Literal["done", "dropped", "disconnected", "closing"]


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
