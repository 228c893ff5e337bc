"""The `GET /v1/usage` wire model (docs/API.md, Usage)."""

from __future__ import annotations

from shared.schemas.common import WireModel


class UsagePublic(WireModel):
    """A tenant's counters for one UTC day."""

    tenant: str
    date: str
    spend_usd: float  # committed: settled costs plus reservations of jobs still running
    budget_usd: float
    requests: int
    jobs: dict[str, int]
    tokens: dict[str, int]
    cache_hits: int
