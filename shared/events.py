"""A job's events: one discriminated union, written by the job store and the workers,
streamed by the SSE route, read back by re-runs and the CLI (docs/API.md, the event table).

Stored in the job's stream as `event` (the name) and `data` (the JSON object without the
name, with `"sequence_number"` first, added by the script that appends it); SSE sends
`data` as stored, so an event is serialised once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.schemas.jobs import Citation, JobError, JobPublic, JobResult

EventName = Literal[
    "job.queued",
    "job.in_progress",
    "retrieval.completed",
    "answer.delta",
    "answer.completed",
    "job.completed",
    "job.failed",
    "job.cancelled",
]
TERMINAL_EVENTS: frozenset[EventName] = frozenset({"job.completed", "job.failed", "job.cancelled"})


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # sequence_number is the stream's

    def data(self) -> str:
        """The stored `data` JSON: the fields without the event name."""
        return self.model_dump_json(exclude={"event"})


class JobQueued(_Event):
    event: Literal["job.queued"] = "job.queued"
    job_id: str
    status: Literal["queued"] = "queued"


class JobInProgress(_Event):
    event: Literal["job.in_progress"] = "job.in_progress"
    job_id: str
    status: Literal["in_progress"] = "in_progress"


class RetrievalCompleted(_Event):
    event: Literal["retrieval.completed"] = "retrieval.completed"
    citations: list[Citation]
    query: str | None = None  # the question retrieved by (condensed); None in older events


class AnswerDelta(_Event):
    event: Literal["answer.delta"] = "answer.delta"
    delta: str


class AnswerCompleted(_Event):
    event: Literal["answer.completed"] = "answer.completed"
    answer: str


class JobCompleted(_Event):
    """Its data is the whole job object."""

    event: Literal["job.completed"] = "job.completed"
    job: JobPublic

    def data(self) -> str:
        return self.job.model_dump_json()


class JobFailed(_Event):
    event: Literal["job.failed"] = "job.failed"
    job_id: str
    error: JobError


class JobCancelled(_Event):
    event: Literal["job.cancelled"] = "job.cancelled"
    job_id: str


JobEvent = Annotated[
    JobQueued
    | JobInProgress
    | RetrievalCompleted
    | AnswerDelta
    | AnswerCompleted
    | JobCompleted
    | JobFailed
    | JobCancelled,
    Field(discriminator="event"),
]
_ADAPTER: TypeAdapter[JobEvent] = TypeAdapter(JobEvent)


def known_answer_events(result: JobResult) -> list[JobEvent]:
    """The events of an answer known at once (cache hit, coalesced), before the job's
    completion: the citations, the whole answer as one delta, `answer.completed`."""
    events: list[JobEvent] = [RetrievalCompleted(citations=result.citations)]
    if result.answer:
        events.append(AnswerDelta(delta=result.answer))
    events.append(AnswerCompleted(answer=result.answer))
    return events


def parse_event(name: str, data: str) -> JobEvent:
    """The event of a stored (or streamed) name and data; ValueError if it is none of ours."""
    fields = json.loads(data)
    if name == "job.completed":
        fields = {"job": fields}
    return _ADAPTER.validate_python({**fields, "event": name})


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One entry of a job's stream, as read back."""

    sequence: int
    name: EventName
    data: str  # JSON object text that includes "sequence_number"

    @property
    def terminal(self) -> bool:
        """True for the event that ends the stream."""
        return self.name in TERMINAL_EVENTS

    def parsed(self) -> JobEvent:
        """The typed event."""
        return parse_event(self.name, self.data)
