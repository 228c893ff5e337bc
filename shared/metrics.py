"""Prometheus metrics named in docs/API.md; defined once here, shared by API and workers.

Each process registers only what it touches; the names, types and labels are the contract.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CACHE_REQUESTS = Counter(
    "ragq_cache_requests_total",
    "Cache lookups by layer and result.",
    ["layer", "result"],
)
ADMISSION_REJECTIONS = Counter(
    "ragq_admission_rejections_total",
    "Requests refused before queueing, by reason.",
    ["reason"],
)
DEGRADED_ANSWERS = Counter(
    "ragq_degraded_answers_total",
    "Answers built without the LLM, by reason.",
    ["reason"],
)
LLM_COST = Counter("ragq_llm_cost_usd_total", "Settled LLM spend in USD.", ["model"])
BUDGET_SPEND = Gauge("ragq_budget_spend_usd", "Today's committed spend in USD.", ["scope"])
CIRCUIT_OPEN = Gauge(
    "ragq_circuit_open", "1 while the LLM endpoint's circuit breaker is open.", ["target"]
)
