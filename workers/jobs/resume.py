"""What a re-run of an answer job resumes from: the citations and answer text an earlier
attempt already announced, and an emitter that streams only what comes after them, so
clients that concatenate `answer.delta` events still get exactly `result.answer`."""

from __future__ import annotations

from shared.events import AnswerDelta, RetrievalCompleted
from shared.schemas.jobs import Citation
from workers.lifecycle import Runtime


class JobStopped(Exception):
    """The job became terminal (cancelled) or expired under us: stop quietly."""


class Emitter:
    """Appends answer deltas, skipping text a previous attempt already streamed."""

    def __init__(self, rt: Runtime, job_id: str, already: str) -> None:
        self._rt = rt
        self._job_id = job_id
        self._already = already
        self._offset = 0  # characters of this attempt's text covered by `already`
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
        if await self._rt.jobs.append(self._job_id, AnswerDelta(delta=delta)) <= 0:
            raise JobStopped  # cancelled or expired meanwhile: stop producing
        self.text += delta


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
