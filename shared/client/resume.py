"""The bookkeeping of an event stream that resumes itself (docs/API.md, `GET
/v1/jobs/{id}/events`): where to resume, which events are new, when to give up. Transport-
free, so the sync and the async client share it and only read the stream differently."""

from __future__ import annotations

from typing import get_args

import httpx
from httpx_sse import ServerSentEvent

from shared.client import calls
from shared.client.errors import RagqError, StreamResumeError
from shared.client.retry import ClientStats, RetryPolicy
from shared.events import TERMINAL_EVENTS, EventName, JobEvent, parse_event

KNOWN_EVENTS: frozenset[str] = frozenset(get_args(EventName))


class ResumeState:
    """One job's stream across its connections: the last event id seen (sent back as
    `Last-Event-ID`), whether the terminal event has arrived, and how many connections in a
    row ended without a new event."""

    def __init__(self, job_id: str, policy: RetryPolicy, stats: ClientStats, after: int = 0):
        self.job_id = job_id
        self.policy = policy
        self.stats = stats
        self.last_id = after
        self.done = False
        self.failures = 0  # consecutive connections that brought nothing new

    def call(self) -> calls.Call[httpx.Response]:
        """The request of the next connection: resume after the last event seen."""
        return calls.events(self.job_id, self.last_id)

    def accept(self, sse: ServerSentEvent) -> JobEvent | None:
        """The typed event of a received one; None for one already seen (a server that
        replays it must not make the caller see it twice) or a kind this client does not
        know (a newer server's; skipped but counted as seen)."""
        if not sse.id or not sse.id.isdigit():
            return None  # not one of a job's events
        sequence = int(sse.id)
        if sequence <= self.last_id:
            return None
        self.last_id = sequence
        self.failures = 0
        if sse.event not in KNOWN_EVENTS:
            return None
        if sse.event in TERMINAL_EVENTS:
            self.done = True
        try:
            return parse_event(sse.event, sse.data)
        except ValueError as exc:
            raise RagqError(f"malformed {sse.event} event {sequence}: {exc}") from exc

    def dropped(self) -> float:
        """The connection ended before the terminal event (an error, or the server closed
        it): seconds to wait before reconnecting, or StreamResumeError once
        `policy.max_reconnects` connections in a row brought no new event."""
        self.failures += 1
        if self.failures > self.policy.max_reconnects:
            raise StreamResumeError(self.job_id, self.last_id, self.failures)
        self.stats.reconnects += 1
        # the first reconnect after a connection that brought events is immediate
        return 0.0 if self.failures == 1 else self.policy.backoff(self.failures - 2)
