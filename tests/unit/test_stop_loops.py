"""A worker's shutdown ends its background loops even when one swallows a cancel, as a
cancel landing inside a redis-py call can (workers/lifecycle.py `stop_loops`)."""

from __future__ import annotations

import asyncio

import pytest

from workers import lifecycle
from workers.lifecycle import stop_loops


async def _swallows_one_cancel(swallowed: list[int]) -> None:
    """A loop like the heartbeat whose first cancel is lost in a Redis round trip."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed.append(1)  # taken for a failed beat: the loop runs on


async def _plain_loop() -> None:
    while True:
        await asyncio.sleep(3600)


async def test_a_loop_that_swallows_a_cancel_is_cancelled_again_until_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lifecycle, "STOP_EVERY_S", 0.01)
    swallowed: list[int] = []
    loops = [
        asyncio.create_task(_swallows_one_cancel(swallowed)),
        asyncio.create_task(_plain_loop()),
    ]
    await asyncio.sleep(0)  # both are running
    await stop_loops(loops)
    assert swallowed == [1]
    assert all(t.cancelled() for t in loops)
