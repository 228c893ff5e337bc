"""What the pickup benchmark measures: one record per request of each timed phase, the
test LLM's calibration, and the failures that keep a run from being published."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Failure:
    phase: str
    index: int
    detail: str


@dataclass
class PickupSample:
    queue_ms: float  # result.timings_ms.queue, written by the worker
    record_ms: float  # started_at - created_at of the job record
    enqueue_ms: float  # POST /v1/jobs round trip seen by the client
    lag_ms: float  # how late the load generator sent it


@dataclass
class CallSample:
    ms: float
    completion_tokens: int
    lag_ms: float
    job_id: str | None = None


@dataclass
class Calibration:
    first_token_ms: float
    token_ms: float
    tokens: int  # every answer is capped at this many tokens (max_tokens)
    warmup_tokens: list[int]
    direct_ms: list[float]


@dataclass
class Results:
    pickup: list[PickupSample] = field(default_factory=list)
    rag: list[CallSample] = field(default_factory=list)
    direct: list[CallSample] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)
    rag_pickup_ms: list[float] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
