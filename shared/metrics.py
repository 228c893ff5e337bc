"""Prometheus metrics of docs/API.md's table, defined once here and shared by API and workers,
plus what keeps them honest: zeroed label sets and the Redis-backed gauges' refresher.

The names, types and labels are the contract. Each process exports what it touches: the API
on its `/metrics` (aggregated over its processes under `ragq serve --workers N`), each worker
on its own port (`workers/metrics.py`). Gauges carry a `multiprocess_mode` for the API's
multi-process mode, chosen per gauge below (a mode of `all` would add a `pid` label).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable
from typing import get_args

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, multiprocess
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.budget import NANO, today
from shared.logging import get_logger
from shared.redis_keys import QUEUES, Keys
from shared.schemas.jobs import DegradedReason

log = get_logger("shared.metrics")

# no `*_created` companions: the text format would export each as one more gauge family, a
# name outside the contract's table (and multi-process mode cannot produce them anyway)
disable_created_metrics()  # type: ignore[no-untyped-call]

GAUGE_REFRESH_S = 5.0  # seconds between two refreshes of the Redis-backed gauges
STOP_GRACE_S = 2.0  # seconds the refresher gets to finish a round trip when stopped

# seconds; up to the long tail of a streamed answer (job timeout 300 s)
_SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)  # seconds
# seconds; long polls (`?wait=` up to 30 s) and SSE streams last as long as the client stays
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

JOB_STATUSES = ("completed", "failed", "cancelled")
JOB_STAGES = ("queue_wait", "retrieval", "llm", "total")
LLM_CALL_STATUSES = ("ok", "error", "timeout")
REJECTION_REASONS = ("overloaded", "rate_limited", "concurrency", "budget")
DEGRADED_REASONS: tuple[str, ...] = get_args(DegradedReason)  # the result's own list
GROUNDING_VALUES = ("true", "attributed", "false", "none")

# API
HTTP_REQUESTS = Counter(
    "ragq_http_requests_total",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "ragq_http_request_duration_seconds",
    "HTTP request duration (whole response, streams included) by method and route template.",
    ["method", "route"],
    buckets=_HTTP_BUCKETS,
)
JOBS_SUBMITTED = Counter(
    "ragq_jobs_submitted_total", "RAG jobs admitted (cache hits included).", ["queue"]
)
ADMISSION_REJECTIONS = Counter(
    "ragq_admission_rejections_total",
    "Requests refused before queueing, by reason.",
    ["reason"],
)

# Workers
JOB_RERUNS = Counter(
    "ragq_job_reruns_total",
    "RAG job runs after the first, by what ended the run before (workers/jobs/attempts.py).",
    ["cause"],
)
JOBS_FINISHED = Counter(
    "ragq_jobs_finished_total",
    "RAG jobs a worker ran to a terminal status.",
    ["queue", "status"],
)
JOB_STAGE_SECONDS = Histogram(
    "ragq_job_stage_seconds",
    "Seconds a completed job spent in each stage.",
    ["queue", "stage"],
    buckets=_SLOW_BUCKETS,
)
# Every process reads the same Redis value: the freshest reading wins, and a dead process's
# reading is dropped (`live`), so a restarted API process never leaves a stale depth behind.
QUEUE_DEPTH = Gauge(
    "ragq_queue_depth",
    "Jobs in the queue, queued plus running (the admission limit's measure).",
    ["queue"],
    multiprocess_mode="livemostrecent",
)
# Each process counts its own running jobs: the total is their sum, over live processes.
JOBS_IN_PROGRESS = Gauge(
    "ragq_jobs_in_progress",
    "Answer jobs running in this process.",
    ["queue"],
    multiprocess_mode="livesum",
)
LLM_CALLS = Counter(
    "ragq_llm_calls_total",
    "LLM calls (retries within a call are one call) by model and outcome.",
    ["model", "status"],
)
LLM_LATENCY = Histogram(
    "ragq_llm_latency_seconds",
    "Seconds from opening an LLM call to its last token (or its failure).",
    ["model"],
    buckets=_SLOW_BUCKETS,
)
LLM_TTFT = Histogram(
    "ragq_llm_time_to_first_token_seconds",
    "Seconds from opening an LLM call to its first token.",
    ["model"],
    buckets=_TTFT_BUCKETS,
)
LLM_TOKENS = Counter(
    "ragq_llm_tokens_total", "Tokens the LLM reported, by direction.", ["model", "direction"]
)
LLM_COST = Counter("ragq_llm_cost_usd_total", "Settled LLM spend in USD.", ["model"])
CONDENSE_OUTCOMES = ("llm", "fallback", "skipped")
CONDENSE = Counter(
    "ragq_condense_total",
    "Follow-up questions with a conversation, by how they were made to stand alone.",
    ["outcome"],
)
DEGRADED_ANSWERS = Counter(
    "ragq_degraded_answers_total",
    "Answers built without the LLM, by reason.",
    ["reason"],
)
ANSWER_GROUNDING = Counter(
    "ragq_answer_grounding_total",
    "LLM answers (not cache hits) by whether they cite a given passage (attributed: they "
    "cited none, ragq added the markers of the passages holding them; none: no passages, "
    "or a refusal).",
    ["grounded"],
)
CITATION_MARKERS_REMOVED = Counter(
    "ragq_citation_markers_removed_total",
    "Citation markers removed from answers because they cite no given passage.",
)
# The breaker's state lives in Redis and every process sees the same: any process saying
# "open" is the one to believe.
CIRCUIT_OPEN = Gauge(
    "ragq_circuit_open",
    "1 while the LLM endpoint's circuit breaker is open.",
    ["target"],
    multiprocess_mode="livemax",
)

# Both
CACHE_REQUESTS = Counter(
    "ragq_cache_requests_total",
    "Cache lookups by layer and result.",
    ["layer", "result"],
)
# One Redis counter read by every process: the freshest reading wins (as the queue depth).
BUDGET_SPEND = Gauge(
    "ragq_budget_spend_usd",
    "Today's committed spend in USD.",
    ["scope"],
    multiprocess_mode="livemostrecent",
)


def prime_api() -> None:
    """Create the API's known label sets at zero, so they are exported before they happen
    (an absent series and a zero are not the same thing to an alert rule)."""
    for reason in REJECTION_REASONS:
        ADMISSION_REJECTIONS.labels(reason=reason)
    for queue in QUEUES:
        JOBS_SUBMITTED.labels(queue=queue)
        QUEUE_DEPTH.labels(queue=queue)
    for result in ("hit", "miss"):
        CACHE_REQUESTS.labels(layer="answer", result=result)
    CACHE_REQUESTS.labels(layer="coalesced", result="hit")
    CONDENSE.labels(outcome="skipped")
    BUDGET_SPEND.labels(scope="service")


def prime_worker(queues: Iterable[str], models: Iterable[str], targets: Iterable[str]) -> None:
    """Create a worker's known label sets at zero: its queues, the models it may call and
    the LLM endpoints whose breakers it watches."""
    for queue in queues:
        QUEUE_DEPTH.labels(queue=queue)
        JOBS_IN_PROGRESS.labels(queue=queue)
        for status in JOB_STATUSES:
            JOBS_FINISHED.labels(queue=queue, status=status)
        for stage in JOB_STAGES:
            JOB_STAGE_SECONDS.labels(queue=queue, stage=stage)
    for model in models:
        for status in LLM_CALL_STATUSES:
            LLM_CALLS.labels(model=model, status=status)
        LLM_LATENCY.labels(model=model)
        LLM_TTFT.labels(model=model)
        for direction in ("prompt", "completion"):
            LLM_TOKENS.labels(model=model, direction=direction)
        LLM_COST.labels(model=model)
    for target in targets:
        CIRCUIT_OPEN.labels(target=target)
    for reason in DEGRADED_REASONS:
        DEGRADED_ANSWERS.labels(reason=reason)
    for grounded in GROUNDING_VALUES:
        ANSWER_GROUNDING.labels(grounded=grounded)
    for outcome in CONDENSE_OUTCOMES:
        CONDENSE.labels(outcome=outcome)
    for cause in ("worker_died", "interrupted"):
        JOB_RERUNS.labels(cause=cause)
    for layer in ("answer", "embedding"):
        for result in ("hit", "miss"):
            CACHE_REQUESTS.labels(layer=layer, result=result)
    BUDGET_SPEND.labels(scope="service")


class GaugeRefresher:
    """Keeps `ragq_queue_depth` and `ragq_budget_spend_usd{scope="service"}` current with one
    pipelined round trip (a ZCARD per queue, a GET of today's service spend) every
    `GAUGE_REFRESH_S` seconds, so a scrape never calls Redis, however many processes and
    scrapers there are."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        queues: Iterable[str],
        *,
        interval_s: float = GAUGE_REFRESH_S,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._queues = tuple(queues)
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._failing = False

    async def refresh(self) -> None:
        """Read the values once and set the gauges."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue in self._queues:
                pipe.zcard(self._keys.queue(queue))
            pipe.get(self._keys.spend(today(), "service"))
            *depths, spent = await pipe.execute()
        for queue, depth in zip(self._queues, depths, strict=True):
            QUEUE_DEPTH.labels(queue=queue).set(int(depth))
        BUDGET_SPEND.labels(scope="service").set(int(spent or 0) / NANO)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.refresh()
            except RedisError as exc:
                if not self._failing:  # once per outage, not once per interval
                    log.warning("metrics.refresh_failed", error=str(exc))
                self._failing = True
            else:
                self._failing = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._stop.wait()

    def start(self) -> GaugeRefresher:
        """Refresh now, then every interval, in a background task of the running loop."""
        self._task = asyncio.create_task(self._run(), name="ragq-gauge-refresher")
        return self

    async def aclose(self) -> None:
        """Stop refreshing. The loop is told to end rather than only cancelled: a cancel
        that lands inside redis-py's pipeline can be swallowed (the loop would run on)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        _, pending = await asyncio.wait({task}, timeout=STOP_GRACE_S)
        for stuck in pending:  # a round trip to an unresponsive Redis
            stuck.cancel()


def multiprocess_dir() -> str | None:
    """prometheus_client's multi-process directory, when this process runs in that mode
    (`ragq serve --workers N` sets it for its processes)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def mark_process_exited() -> None:
    """In multi-process mode, drop this process's `live*` gauges from the aggregate."""
    path = multiprocess_dir()
    if path is not None:
        multiprocess.mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]
