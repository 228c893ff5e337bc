"""Prometheus metrics named in docs/API.md; defined once here, shared by API and workers."""

from __future__ import annotations

from prometheus_client import Counter

CACHE_REQUESTS = Counter(
    "ragq_cache_requests_total",
    "Cache lookups by layer and result.",
    ["layer", "result"],
)
