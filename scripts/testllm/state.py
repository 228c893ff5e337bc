"""The mutable state of one test LLM app: its behaviour, its counters (read by `GET /_stats`,
which can wait for a counter to reach a bound) and the shutdown signal."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

from scripts.testllm.faults import Behaviour

COUNTERS = (
    "chat_requests",
    "chat_failures_injected",
    "chat_in_flight",
    "chat_disconnected",
    "chat_dropped",
    "streams_started",
    "streams_completed",
    "streams_disconnected",
    "streams_dropped",
    "tokens_sent",
    "embedding_requests",
    "condense_requests",
)


@dataclass
class Stats:
    """The counters `GET /_stats` reports, and the body of the last chat request."""

    chat_requests: int = 0
    chat_failures_injected: int = 0
    chat_in_flight: int = 0  # a gauge: requests being answered right now
    chat_disconnected: int = 0  # any chat request whose client left before its end
    chat_dropped: int = 0  # any chat request whose connection was cut on purpose
    streams_started: int = 0  # accepted streaming requests, even those hung before headers
    streams_completed: int = 0
    streams_disconnected: int = 0
    streams_dropped: int = 0  # streams cut on purpose (drop_after_tokens, drop_before_headers)
    tokens_sent: int = 0
    embedding_requests: int = 0
    condense_requests: int = 0  # ragq's requests to rewrite a follow-up (also chat_requests)
    last_request: dict[str, Any] | None = None


class Runtime:
    """The mutable state of one app: behaviour, counters and the shutdown signal."""

    def __init__(self, behaviour: Behaviour, model: str) -> None:
        self.model = model
        self.initial = dataclasses.replace(behaviour)
        self.behaviour = dataclasses.replace(behaviour)
        self.stats = Stats()
        self.closing = asyncio.Event()
        self._changed = asyncio.Event()
        self._waiters = 0

    def count(self, name: str, delta: int = 1) -> None:
        setattr(self.stats, name, getattr(self.stats, name) + delta)
        self._notify()

    def reset(self) -> None:
        in_flight = self.stats.chat_in_flight
        self.behaviour = dataclasses.replace(self.initial)
        self.stats = Stats(chat_in_flight=in_flight)
        self._notify()

    def _notify(self) -> None:
        if self._waiters:  # no Event churn on the hot path when nobody waits
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def wait_until(self, counter: str, low: int | None, high: int | None) -> None:
        """Return once `low <= counter <= high` (a bound that is None is not checked)."""
        while True:
            value: int = getattr(self.stats, counter)
            if (low is None or value >= low) and (high is None or value <= high):
                return
            self._waiters += 1
            try:
                await self._changed.wait()
            finally:
                self._waiters -= 1

    def snapshot(self) -> dict[str, Any]:
        return dataclasses.asdict(self.stats)
