"""Bounded waits for a condition that holds in another process.

A process that becomes ready, or a document the worker indexes, sends the harness no event
it could await, so the condition is tried every `POLL_S` until it holds, until one of the
harness's processes exits (a failure at start-up), or until the bound passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from scripts.harness.processes import HarnessError, ProcessSet

POLL_S = 0.2


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    *,
    timeout_s: float,
    failure: str | Callable[[], str],
    processes: ProcessSet | None = None,
    poll_s: float = POLL_S,
) -> None:
    """Return once `condition()` is true; raise `HarnessError` when a process of
    `processes` exits first, or with "FAILURE after N s" when `timeout_s` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        if processes is not None:
            processes.check_alive()
        if await condition():
            return
        if loop.time() > deadline:
            text = failure if isinstance(failure, str) else failure()
            raise HarnessError(f"{text} after {timeout_s:.0f} s")
        await asyncio.sleep(poll_s)
