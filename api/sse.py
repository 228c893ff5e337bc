"""A job's events as Server-Sent Events: where to resume, then replay and follow
(docs/API.md, `GET /v1/jobs/{id}/events`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import structlog
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import ClientsDep
from shared.errors import InvalidInput
from shared.events import StoredEvent
from shared.jobrecord import JobRecord

log = structlog.get_logger("api.jobs")

# a Redis stream id part is an unsigned 64-bit integer: events are `0-<sequence>`
MAX_EVENT_ID = 2**64 - 1
_EVENT_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only: str.isdigit() also takes "²"
_QUERY_LOC = ("query", "starting_after")
_HEADER_LOC = ("header", "Last-Event-ID")


def _bad_event_id(loc: tuple[str, str], detail: str) -> InvalidInput:
    return InvalidInput(detail, extra={"errors": [{"loc": list(loc), "msg": detail}]})


def resume_point(record: JobRecord, last_event_id: str | None, starting_after: int | None) -> int:
    """The sequence number to resume after (`?starting_after` wins over `Last-Event-ID`);
    422 for one that is no event number (either of them, whichever wins), or one a running
    job has not reached yet."""
    after, where = 0, _QUERY_LOC
    if last_event_id is not None:
        text = last_event_id.strip(" \t")
        if not _EVENT_ID.fullmatch(text) or int(text) > MAX_EVENT_ID:
            raise _bad_event_id(
                _HEADER_LOC,
                f"Last-Event-ID must be an event sequence number (0 to {MAX_EVENT_ID}).",
            )
        after, where = int(text), _HEADER_LOC
    if starting_after is not None:
        after, where = starting_after, _QUERY_LOC
    # events so far; a terminal job's last is its end
    if after > record.seq and not record.terminal:
        raise _bad_event_id(
            where, f"Job {record.id} has {record.seq} events so far; there is no event {after} yet."
        )
    return after


async def follow(clients: ClientsDep, job_id: str, after: int) -> AsyncIterator[StoredEvent]:
    """A job's events after `after`: replayed, then followed live until the terminal one
    (or until the job expires). Raises RedisError when Redis goes away."""
    settings = clients.settings
    wait_ms = int(settings.sse_ping_s * 1000)
    position = after
    block_ms: int | None = None  # the first read never waits: a finished job ends at once
    while True:
        batch = await clients.jobs.read_events(job_id, position, block_ms=block_ms)
        block_ms = wait_ms
        if not batch:
            record = await clients.jobs.get(job_id)
            if record is None:
                return  # the job expired while we waited
            if record.terminal:
                # its terminal event was written with the status: read once more, in case
                # both landed after the read above; then nothing can follow
                batch = await clients.jobs.read_events(job_id, position, block_ms=None)
                if not batch:
                    return
        for event in batch:
            yield event
            position = event.sequence
            if event.terminal:
                return


def sse_response(
    source: AsyncIterator[ServerSentEvent], clients: ClientsDep
) -> EventSourceResponse:
    """An SSE response (pings every RAGQ_SSE_PING_S, never cached or buffered)."""
    return EventSourceResponse(
        source,
        ping=clients.settings.sse_ping_s,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def event_stream(clients: ClientsDep, job_id: str, after: int) -> EventSourceResponse:
    """Replay the job's events after `after`, then follow live until the terminal one."""

    async def events() -> AsyncIterator[ServerSentEvent]:
        position = after
        try:
            async for event in follow(clients, job_id, after):
                yield ServerSentEvent(data=event.data, event=event.name, id=str(event.sequence))
                position = event.sequence
        except RedisError as exc:  # the response has started: end it, the client resumes
            log.warning("sse.redis_unavailable", job_id=job_id, after=position, error=str(exc))

    return sse_response(events(), clients)
