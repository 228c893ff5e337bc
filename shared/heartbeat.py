"""A worker's heartbeat: written by each worker process (workers/lifecycle.py), read by the
API's readiness check (api/routes/health.py), stored as JSON in the workers hash."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

QdrantState = Literal["ok", "error"]
LLMState = Literal["ok", "degraded", "not_configured"]


class WorkerHeartbeat(BaseModel):
    """One worker's latest beat."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ts: float  # epoch seconds of the beat
    queues: list[str]
    running: int = 0  # jobs it runs now
    slots: int = 0  # jobs it runs at once at most, per queue (admission's predicted wait)
    # the Redis connection the beat was written on: while it is listed, the worker lives
    client_id: int | None = None
    client_name: str | None = None
    qdrant: QdrantState | None = None
    llm: LLMState | None = None
