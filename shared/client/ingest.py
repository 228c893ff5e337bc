"""Bulk ingest (`POST /v1/documents/bulk` in batches, then `POST /v1/documents/status`
long polls until every queued document is indexed or failed): the progress and summary a
caller sees, and the steps as a transport-free flow."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from pydantic import BaseModel

from shared.client.bulk import (
    BULK_MAX_DOCUMENTS,
    MAX_STATUS_WAIT_S,
    BulkResult,
    StatusList,
    bulk_call,
    status_call,
)
from shared.client.calls import Call
from shared.client.retry import ClientStats

Outcome = Literal["queued", "unchanged", "indexed", "failed"]


@dataclass(frozen=True)
class IngestProgress:
    """Where an ingest stands; `total` is the documents sent so far, or all of them from
    the start when the input has a length."""

    sent: int
    queued: int  # sent and waiting to be indexed
    unchanged: int
    indexed: int
    failed: int
    total: int

    @property
    def finished(self) -> int:
        """Documents with a final outcome."""
        return self.unchanged + self.indexed + self.failed


@dataclass(frozen=True)
class DocumentOutcome:
    """What became of one document: `queued` only when not waiting for indexing."""

    index: int  # its position in the input
    id: str | None  # None for a failed document that named no id
    status: Outcome
    error: str | None = None


@dataclass
class IngestSummary:
    """The result of `ingest`: one outcome per input document, in input order, and what
    the ingest spent (requests sent, seconds waited on rate limits, wall time)."""

    outcomes: list[DocumentOutcome]
    stats: ClientStats = field(default_factory=ClientStats)
    elapsed_s: float = 0.0

    def count(self, status: Outcome) -> int:
        """How many documents ended with `status`."""
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failures(self) -> list[DocumentOutcome]:
        """The documents that failed, with their errors."""
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def waited_on_limits_s(self) -> float:
        """Seconds this ingest slept on `Retry-After`."""
        return self.stats.waited_on_limits_s


Progress = Callable[[IngestProgress], None]


class IngestOptions(TypedDict, total=False):
    """Options of `ingest`: `batch_size` documents per bulk request (1 to 500, default 500);
    `wait` for indexing (default True); `skip_unchanged` documents whose text and metadata
    the server already holds (default True); `progress`, called after every step;
    `timeout_s` on the wait for indexing (default None: until every document ends)."""

    batch_size: int
    wait: bool
    skip_unchanged: bool
    progress: Progress | None
    timeout_s: float | None


Flow = Generator[Call[Any], Any, IngestSummary]


def _body(document: BaseModel | dict[str, Any]) -> dict[str, Any]:
    if isinstance(document, BaseModel):
        return document.model_dump(mode="json", exclude_none=True)
    return dict(document)  # sent as given: the server reports a bad one as failed


def _batches(documents: Iterable[Any], size: int) -> Iterator[list[dict[str, Any]]]:
    it = iter(documents)
    while batch := [_body(d) for d in itertools.islice(it, size)]:
        yield batch


def _error_text(error: dict[str, Any] | None) -> str | None:
    if error is None:
        return None
    detail = error.get("detail") or error.get("title") or ""
    return f"{error.get('status', '')} {detail}".strip()


class _Tracker:
    """The outcomes so far, and the progress callback fed from them."""

    def __init__(self, total: int | None, progress: Progress | None) -> None:
        self.known_total = total
        self.progress = progress
        self.outcomes: list[DocumentOutcome] = []
        self.position: dict[str, int] = {}  # document id -> index in outcomes

    def sent(self, result: BulkResult) -> None:
        base = len(self.outcomes)
        for item in sorted(result.data, key=lambda i: i.index):
            if item.id is not None:
                self.position[item.id] = len(self.outcomes)
            error = _error_text(item.error)
            self.outcomes.append(DocumentOutcome(base + item.index, item.id, item.status, error))
        self.report()

    def pending(self) -> list[str]:
        return [o.id for o in self.outcomes if o.status == "queued" and o.id is not None]

    def statuses(self, states: StatusList) -> None:
        for state in states.data:
            at = self.position.get(state.id)
            if at is None or state.status not in {"indexed", "failed", "missing"}:
                continue
            old = self.outcomes[at]
            status: Outcome = "indexed" if state.status == "indexed" else "failed"
            error = state.error if state.status == "failed" else None
            if state.status == "missing":
                error = "the document was deleted before it was indexed"
            self.outcomes[at] = DocumentOutcome(old.index, old.id, status, error)
        self.report()

    def report(self) -> None:
        if self.progress is None:
            return
        count = dict.fromkeys(("queued", "unchanged", "indexed", "failed"), 0)
        for o in self.outcomes:
            count[o.status] += 1
        sent = len(self.outcomes)
        total = sent if self.known_total is None else max(self.known_total, sent)
        self.progress(IngestProgress(sent=sent, total=total, **count))


def ingest_flow(
    documents: Iterable[BaseModel | dict[str, Any]],
    *,
    batch_size: int = BULK_MAX_DOCUMENTS,
    wait: bool = True,
    skip_unchanged: bool = True,
    progress: Progress | None = None,
    timeout_s: float | None = None,
    stats: ClientStats | None = None,
) -> Flow:
    """The steps of an ingest: yields each call and receives its parsed answer; returns
    the summary. The caller's client runs it (and counts into `stats`). Waiting for
    indexing stops after `timeout_s` (None: until every document is indexed or failed);
    documents still queued then keep the outcome `queued`."""
    if not 1 <= batch_size <= BULK_MAX_DOCUMENTS:
        raise ValueError(f"batch_size must be 1 to {BULK_MAX_DOCUMENTS}, not {batch_size}")
    started = time.monotonic()
    total = len(documents) if isinstance(documents, Sized) else None
    tracker = _Tracker(total, progress)
    for batch in _batches(documents, batch_size):
        tracker.sent((yield bulk_call(batch, skip_unchanged)))
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while wait and (pending := tracker.pending()):
        left = MAX_STATUS_WAIT_S if deadline is None else deadline - time.monotonic()
        if left <= 0:
            break
        tracker.statuses((yield status_call(pending[:batch_size], left)))
    elapsed = time.monotonic() - started
    return IngestSummary(tracker.outcomes, stats or ClientStats(), elapsed)
