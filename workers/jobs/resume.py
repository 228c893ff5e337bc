"""What a re-run of an answer job resumes from: the citations and answer text an earlier
attempt already announced, and an emitter that streams only what comes after them, so
clients that concatenate `answer.delta` events still get exactly `result.answer`."""

from __future__ import annotations

import asyncio
import math

from shared.events import AnswerDelta, RetrievalCompleted
from shared.schemas.jobs import Citation
from workers.lifecycle import Runtime


class JobStopped(Exception):
    """The job became terminal (cancelled) or expired under us: stop quietly."""


class Emitter:
    """Appends answer deltas, skipping text a previous attempt already streamed.

    With `flush_s` > 0 the deltas are batched: the first is written at once, later ones
    gather for up to `flush_s` after the previous write and go as one `answer.delta` (a
    timer writes them if no delta comes to do it), so an answer costs a bounded number of
    Redis writes however many tokens it has. `pending()` hands over what is still held,
    to be written with the job's completion; `close()` drops the timer of a job that
    stops. A write refused (the job cancelled or gone) raises `JobStopped` from the next
    `emit` or `pending`."""

    def __init__(self, rt: Runtime, job_id: str, already: str, *, flush_s: float = 0.0) -> None:
        self._rt = rt
        self._job_id = job_id
        self._already = already
        self._offset = 0  # characters of this attempt's text covered by `already`
        self._flush_s = flush_s
        self._held: list[str] = []  # emitted, not yet written
        self._written_at = -math.inf  # loop time of the last write
        self._lock = asyncio.Lock()  # writes go out one at a time, in order
        self._timer: asyncio.TimerHandle | None = None
        self._late: asyncio.Task[None] | None = None  # the timer's write
        self._stopped = False
        self.text = already

    async def emit(self, delta: str) -> None:
        if self._offset < len(self._already):
            overlap = self._already[self._offset : self._offset + len(delta)]
            if delta.startswith(overlap):
                self._offset += len(overlap)
                delta = delta[len(overlap) :]
            else:  # this attempt diverged from what was streamed; continue after it
                self._offset = len(self._already)
            if not delta:
                return
        self._check()
        self.text += delta
        self._held.append(delta)
        loop = asyncio.get_running_loop()
        due = self._written_at + self._flush_s
        if loop.time() >= due:
            self._cancel_timer()
            await self._write()
            self._check()  # cancelled or expired meanwhile: stop producing
        elif self._timer is None:
            self._timer = loop.call_at(due, self._write_late)

    async def pending(self) -> list[AnswerDelta]:
        """What is held back (as one delta, or none), to be appended by the caller; after
        any write in flight has landed."""
        self._cancel_timer()
        async with self._lock:
            self._check()
            text, self._held = "".join(self._held), []
        return [AnswerDelta(delta=text)] if text else []

    def _check(self) -> None:
        """Raise what stopped the writes: JobStopped, or the timer's write's error."""
        late = self._late
        if late is not None and late.done() and not late.cancelled():
            self._late = None
            if (error := late.exception()) is not None:
                raise error
        if self._stopped:
            raise JobStopped

    def close(self) -> None:
        """Drop the timer and any write it started (the job stops here)."""
        self._cancel_timer()
        if (late := self._late) is not None:
            late.cancel()
            if late.done() and not late.cancelled():
                late.exception()  # retrieved: the job stops for its own reason

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _write_late(self) -> None:
        self._timer = None
        self._late = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        async with self._lock:
            if self._stopped or not self._held:
                return
            text, self._held = "".join(self._held), []
            self._written_at = asyncio.get_running_loop().time()
            try:
                seq = await self._rt.jobs.append(self._job_id, AnswerDelta(delta=text))
            except BaseException:
                self._held.insert(0, text)  # not written: it goes with the next write
                raise
            self._stopped = seq <= 0


async def previous_attempt(
    rt: Runtime, job_id: str
) -> tuple[tuple[list[Citation], str | None] | None, str]:
    """What an earlier attempt of this job already announced: its citations with the
    question it retrieved by (None when it announced none), and its answer text."""
    retrieved: tuple[list[Citation], str | None] | None = None
    text: list[str] = []
    after = 0
    while events := await rt.jobs.read_events(job_id, after, block_ms=None):
        for stored in events:
            event = stored.parsed()
            if isinstance(event, RetrievalCompleted):
                retrieved = (event.citations, event.query)
            elif isinstance(event, AnswerDelta):
                text.append(event.delta)
        after = events[-1].sequence
    return retrieved, "".join(text)
