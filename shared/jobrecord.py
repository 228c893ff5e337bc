"""The job record: the Redis hash of one job, read into a typed, frozen value.

The hash is written only by the job scripts (shared/lua/job_*.lua); every reader gets a
`JobRecord` from `JobStore.get`, never the raw fields.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from shared.schemas.jobs import TERMINAL_STATUSES, JobPublic, JobStatus, Priority, job_links


def new_job_id() -> str:
    """An unguessable job id (128 random bits)."""
    return "job_" + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job as stored: what docs/API.md shows of it plus the bookkeeping of admission,
    budget and coalescing (each field is documented where the scripts write it)."""

    id: str
    tenant: str
    status: JobStatus
    created_at: str
    request: str  # the JobCreate, as JSON
    queue: Priority
    request_id: str = ""
    seq: int = 0  # events written so far
    started_at: str | None = None
    completed_at: str | None = None
    result: str | None = None  # JobResult JSON, once completed
    error: str | None = None  # JobError JSON, once failed
    pending_result: str | None = None  # an answer generated but not yet delivered (re-runs)
    lease: str | None = None  # the API key's lease set, when it has a concurrency cap
    inflight: str | None = None  # the inflight pointer this job leads (coalescing)
    leader: str | None = None  # the job this one follows (coalescing)
    payload: str | None = None  # a follower's arq payload, queued if its leader is cancelled
    reserved_nano: int = 0  # budget reserved at submit and not yet settled
    spend_keys: tuple[str, str] | None = None  # the counters that reservation is on
    owner: str | None = None  # the worker running it now, unset by an orderly interruption
    deaths: int = 0  # its runs that ended with their worker's death (workers/jobs/attempts.py)

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> JobRecord:
        """The record of a job hash (HGETALL, decoded)."""
        spend = raw.get("spend_keys", "").split()
        return cls(
            id=raw["id"],
            tenant=raw["tenant"],
            status=cast(JobStatus, raw["status"]),
            created_at=raw["created_at"],
            request=raw["request"],
            queue=cast(Priority, raw["queue"]),
            request_id=raw.get("request_id", ""),
            seq=int(raw.get("seq") or 0),
            started_at=raw.get("started_at") or None,
            completed_at=raw.get("completed_at") or None,
            result=raw.get("result") or None,
            error=raw.get("error") or None,
            pending_result=raw.get("pending_result") or None,
            lease=raw.get("lease") or None,
            inflight=raw.get("inflight") or None,
            leader=raw.get("leader") or None,
            payload=raw.get("payload") or None,
            reserved_nano=int(raw.get("reserved_nano") or 0),
            spend_keys=(spend[0], spend[1]) if len(spend) == 2 else None,
            owner=raw.get("owner") or None,
            deaths=int(raw.get("deaths") or 0),
        )

    @property
    def terminal(self) -> bool:
        """True once the job has completed, failed or been cancelled."""
        return self.status in TERMINAL_STATUSES

    @property
    def day(self) -> str:
        """The UTC day it was submitted (the budget period of a submit-time reservation)."""
        return self.created_at[:10]

    def public(self, **changes: str) -> JobPublic:
        """The job object of docs/API.md, with `changes` (record fields) applied."""
        fields = {
            "status": self.status,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "result": self.result,
            "error": self.error,
            **changes,
        }
        return JobPublic.model_validate(
            {
                "id": self.id,
                "status": fields["status"],
                "created_at": self.created_at,
                "started_at": fields["started_at"],
                "completed_at": fields["completed_at"],
                "request": json.loads(self.request),
                "result": json.loads(fields["result"]) if fields["result"] else None,
                "error": json.loads(fields["error"]) if fields["error"] else None,
                "links": job_links(self.id),
            }
        )


def usage_counts(job: JobPublic) -> dict[str, int]:
    """What a finished job adds to its tenant's usage counters of the day."""
    counts: dict[str, int] = {job.status: 1}
    if job.result is not None:
        counts["prompt_tokens"] = job.result.usage.prompt_tokens
        counts["completion_tokens"] = job.result.usage.completion_tokens
        counts["cache_hits"] = int(job.result.cached)
    return counts
