"""The bulk endpoints (`POST /v1/documents/bulk`, `POST /v1/documents/status`): their
wire models, their calls, and the transport-free flow that reads (or waits for) the
status of many documents."""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from typing import Any, Literal

from pydantic import Field

from shared.client.calls import Call, json_model
from shared.schemas.common import WireModel

BULK_MAX_DOCUMENTS = 500  # the server's default `bulk_max_documents`
MAX_STATUS_WAIT_S = 60.0  # POST /v1/documents/status "wait" upper bound
FINAL_STATES = frozenset({"indexed", "failed", "missing"})


class BulkItem(WireModel):
    """One document's line of a bulk answer."""

    index: int
    id: str | None  # null for a failed item that named no id
    status: Literal["queued", "unchanged", "failed"]
    job_id: str | None = None
    content_sha256: str | None = None
    error: dict[str, Any] | None = None


class BulkResult(WireModel):
    """`POST /v1/documents/bulk` answer."""

    object: Literal["bulk_result"] = "bulk_result"
    data: list[BulkItem]
    queued: int = 0
    unchanged: int = 0
    failed: int = 0


class DocumentState(WireModel):
    """A document's status as `POST /v1/documents/status` reports it (`missing` for an
    unknown id)."""

    id: str
    status: str
    title: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    content_sha256: str | None = None
    error: str | None = None


class StatusList(WireModel):
    """`POST /v1/documents/status` answer."""

    object: Literal["list"] = "list"
    data: list[DocumentState]
    pending: int = 0


def bulk_call(documents: list[dict[str, Any]], skip_unchanged: bool) -> Call[BulkResult]:
    """`POST /v1/documents/bulk`: one batch. Idempotent when every document names its id
    (a re-sent batch replaces, or skips as unchanged, the same documents)."""
    return Call(
        "POST",
        "/v1/documents/bulk",
        json_model(BulkResult),
        json={"documents": documents, "skip_unchanged": skip_unchanged},
        idempotent=all(d.get("id") is not None for d in documents),
    )


def status_call(ids: list[str], wait_s: float) -> Call[StatusList]:
    """`POST /v1/documents/status`, long-polling up to `wait_s` seconds (capped at 60)."""
    wait = math.ceil(max(0.0, min(wait_s, MAX_STATUS_WAIT_S)))  # whole seconds
    return Call(
        "POST",
        "/v1/documents/status",
        json_model(StatusList),
        json={"ids": ids, "wait": wait},
        idempotent=True,
        hold_s=wait,
    )


def states_flow(
    ids: list[str], *, wait: bool, timeout_s: float | None = None
) -> Generator[Call[Any], Any, list[DocumentState]]:
    """The states of `ids` (`missing` for an unknown one), asked 500 at a time; with
    `wait`, long-polled until each is indexed, failed or missing, or `timeout_s` passes
    (None: no limit)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    states: dict[str, DocumentState] = {}
    for start in range(0, len(ids), BULK_MAX_DOCUMENTS):
        chunk = ids[start : start + BULK_MAX_DOCUMENTS]
        while True:
            left = MAX_STATUS_WAIT_S if deadline is None else deadline - time.monotonic()
            answer: StatusList = yield status_call(chunk, max(left, 0.0) if wait else 0.0)
            states.update((state.id, state) for state in answer.data)
            chunk = [i for i in chunk if states[i].status not in FINAL_STATES]
            if not (wait and chunk and left > 0):
                break
    return [states[i] for i in ids if i in states]
