"""Service settings: every `RAGQ_*` variable of docs/API.md, validated once.

Only entry points call `get_settings()`; everything else receives a `Settings`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    """ragq configuration, read from `RAGQ_*` environment variables and `.env`."""

    model_config = SettingsConfigDict(
        env_prefix="RAGQ_", env_file=".env", extra="ignore", frozen=True
    )

    # API
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_workers: int = Field(1, ge=1, le=64)
    max_job_body_bytes: int = Field(1 * MiB, ge=1024)
    max_document_body_bytes: int = Field(20 * MiB, ge=1024)
    bulk_max_documents: int = Field(500, ge=1, le=10_000)  # per bulk load or status read
    max_header_bytes: int = Field(32 * 1024, ge=1024)  # names + values of all request headers
    idempotency_ttl_s: int = Field(86_400, ge=60)
    sse_ping_s: float = Field(15.0, gt=0, le=15.0)

    # Redis
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = Field(5.0, gt=0)
    redis_max_connections: int = Field(1000, ge=8)
    key_prefix: str = Field("ragq", pattern=r"^[a-zA-Z0-9_.-]{1,32}$")

    # Jobs and workers
    result_ttl_s: int = Field(86_400, ge=60)
    events_max_len: int = Field(20_000, ge=100)
    job_timeout_s: float = Field(300.0, gt=0)
    # starts of one job, whatever ended the earlier ones (a backstop against a job that is
    # re-run for ever); a job that was running when its worker died max_worker_deaths times
    # is taken to be what kills them and fails (workers/jobs/attempts.py)
    max_tries: int = Field(10, ge=1, le=100)
    max_worker_deaths: int = Field(5, ge=1, le=100)
    worker_max_jobs: int = Field(32, ge=1, le=1000)
    worker_notify: bool = True  # false = arq's plain polling, for comparison only
    worker_poll_s: float = Field(
        1.0, gt=0, le=10
    )  # fallback poll; wake-ups come from a notify list
    lock_ttl_s: float = Field(15.0, ge=3)  # renewed every lock_ttl_s / 3 while a job runs
    heartbeat_s: float = Field(5.0, gt=0)
    worker_drain_s: float = Field(20.0, ge=0)  # on SIGTERM, running jobs get this long to finish
    worker_metrics_port: int = Field(9100, ge=0, le=65535)  # each worker's /metrics; 0 = off
    max_queue_depth: int = Field(1000, ge=1)
    # a job whose estimated wait to start (queue ahead / measured drain rate) is longer is
    # refused (429 overloaded) rather than accepted to start late; 0 = depth alone decides
    max_queue_wait_s: float = Field(15.0, ge=0)
    # ...or longer than this many times the time a job takes (slots / drain rate), so an
    # accepted job waits at most half a job's time at any overload; 0 = the seconds alone
    max_queue_wait_ratio: float = Field(0.5, ge=0)
    # answer tokens are written to the job's stream in batches: the first at once, the
    # rest at most this long after the previous write (0: one write per delta)
    stream_flush_ms: int = Field(50, ge=0, le=1000)

    # Retrieval
    qdrant_url: str = ""
    qdrant_path: Path = Path("data/qdrant")
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = ""  # empty = one collection per embedding model (see below)
    qdrant_timeout_s: float = Field(10.0, gt=0)
    embeddings_base_url: str = ""
    embeddings_model: str = "all-minilm-l6-v2"  # or wordllama-l2-supercat-256 (fast, weaker)
    embeddings_api_key: SecretStr = SecretStr("EMPTY")
    embeddings_timeout_s: float = Field(30.0, gt=0)
    # With RAGQ_EMBEDDINGS_BASE_URL: text put before questions and before passages (e5 models
    # served by vLLM or TEI want "query: " and "passage: ").
    embeddings_query_prefix: str = ""
    embeddings_passage_prefix: str = ""
    # after the last tenant moves to a new RAGQ_EMBEDDINGS_MODEL, the old collection is kept
    # this long (searches that began before the switch finish on it), then dropped
    reembed_grace_s: float = Field(30.0, ge=0)
    embedding_cache_ttl_s: int = Field(30 * 86_400, ge=0)  # 0 turns the cache off
    # the embedded all-minilm-l6-v2 in this many processes of its own (0: on the worker's
    # threads): with embedded Qdrant a worker is one process, and this moves the model,
    # its largest CPU cost per question, onto other cores (README, "Sizing processes")
    embedding_processes: int = Field(0, ge=0, le=16)
    chunk_max_chars: int = Field(1200, ge=100)
    chunk_overlap_chars: int = Field(150, ge=0)
    retrieval_mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    max_chunks_per_document: int = Field(3, ge=0)  # 0 = no cap
    # hybrid: how the dense and BM25 lists are fused. `score`: each list's scores normalised
    # by its mean ± 3 standard deviations, weighted by RAGQ_SCORE_WEIGHTS (dense, sparse);
    # `rank`: weighted RRF (RAGQ_RRF_WEIGHTS, RAGQ_RRF_K)
    hybrid_fusion: Literal["score", "rank"] = "score"
    score_weights: tuple[float, float] = (1.0, 0.5)  # dense, sparse; JSON in the env
    rrf_weights: tuple[float, float] = (1.0, 2.0)  # dense, sparse; JSON in the env: [1, 2]
    rrf_k: int = Field(10, ge=1)
    bm25_k1: float = Field(1.2, ge=0)
    bm25_b: float = Field(0.75, ge=0, le=1)
    bm25_avgdl: float | None = Field(None, gt=0)  # None = chunk_max_chars / 15

    # LLM
    llm_base_url: str = ""
    llm_model: str = "qwen2.5-7b-instruct"
    llm_models: list[str] = Field(default_factory=list)  # extra models a request may name
    llm_api_key: SecretStr = SecretStr("EMPTY")
    llm_timeout_s: float = Field(30.0, gt=0)
    llm_condense_timeout_s: float = Field(10.0, gt=0)  # the whole follow-up rewrite call
    # no replica above ceil(factor * (in flight + 1) / replicas): workers/rag/routing.py
    llm_load_factor: float = Field(1.25, ge=1.0)
    # tier name → {"base_url": "u1,u2", "model": "m", "models": "lora-a,lora-b"} (shared/tiers.py)
    llm_tiers: dict[str, dict[str, str]] = Field(default_factory=dict)

    # LLM resilience: one retry layer, then a circuit breaker per endpoint shared through Redis
    llm_retries: int = Field(2, ge=0, le=10)  # extra attempts on connection errors, 5xx, 429
    llm_retry_backoff_s: float = Field(0.2, ge=0)  # first backoff; doubles, with full jitter
    llm_retry_backoff_max_s: float = Field(2.0, ge=0)
    breaker_failures: int = Field(5, ge=1)  # consecutive failed calls that open the breaker
    breaker_failure_ratio: float = Field(0.5, gt=0, le=1)  # ...or this share of a window
    breaker_window_s: float = Field(30.0, gt=0)
    breaker_min_calls: int = Field(10, ge=1)  # calls in the window before the ratio counts
    breaker_open_s: float = Field(15.0, gt=0)  # open this long, then one probe (half-open)

    # Protection: per-key limits (a key's own value wins; 0 = unlimited) and admission
    default_rpm: int = Field(600, ge=0)
    default_max_concurrent: int = Field(0, ge=0)
    drain_window_s: int = Field(60, ge=10, le=3600)  # drain rate measured over this window
    max_retry_after_s: int = Field(300, ge=1)

    # Cost: prices (JSON, see shared/pricing.py), daily budgets, policy on exhaustion
    llm_prices: dict[str, dict[str, float]] = Field(default_factory=dict)
    daily_budget_usd: float = Field(50.0, ge=0)  # service-wide; 0 = nothing may be spent
    budget_policy: Literal["degrade", "reject", "fallback_model"] = "degrade"
    fallback_llm_base_url: str = ""  # policy fallback_model: a cheaper endpoint (or the main)
    fallback_llm_model: str = ""  # its model; its price must be in the table (often 0)
    prompt_chars_per_token: float = Field(3.0, gt=0)  # worst-case prompt estimate

    # An LLM answer that cites none of its passages (and is no refusal): kept and flagged
    # (`grounded: false`), or replaced by the extractive answer (held back until it cites)
    ungrounded_policy: Literal["flag", "extractive"] = "flag"

    # Answer cache (temperature 0 only) and in-flight coalescing of identical requests
    answer_cache_ttl_s: int = Field(86_400, ge=0)  # 0 turns the cache and coalescing off

    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("rrf_weights", "score_weights")
    @classmethod
    def _weights(cls, value: tuple[float, float]) -> tuple[float, float]:
        if min(value) < 0 or max(value) == 0:
            raise ValueError("fusion weights: both >= 0 and not both 0")
        return value

    @field_validator("llm_tiers")
    @classmethod
    def _tiers(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for name, entry in value.items():
            if name == "default" or not name:
                raise ValueError("RAGQ_LLM_TIERS: the default tier is RAGQ_LLM_BASE_URL/_MODEL")
            unknown = set(entry) - {"base_url", "model", "models"}
            if unknown or not entry.get("base_url", "").strip() or not entry.get("model"):
                raise ValueError(
                    f"RAGQ_LLM_TIERS[{name!r}]: needs base_url and model (optional models), "
                    f"got {sorted(entry)}"
                )
        return value

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> Settings:
        if self.chunk_overlap_chars >= self.chunk_max_chars:
            raise ValueError("RAGQ_CHUNK_OVERLAP_CHARS must be below RAGQ_CHUNK_MAX_CHARS")
        # a job's answer deltas do not push its record's expiry back (its start did), so
        # the record must outlive the longest job
        if self.result_ttl_s <= self.job_timeout_s:
            raise ValueError("RAGQ_RESULT_TTL_S must be above RAGQ_JOB_TIMEOUT_S")
        return self

    @property
    def llm_base_urls(self) -> list[str]:
        """The configured OpenAI-compatible endpoints (comma-separated in the variable)."""
        return [u.strip() for u in self.llm_base_url.split(",") if u.strip()]

    @property
    def allowed_models(self) -> set[str]:
        """Model names a request may ask for."""
        return {self.llm_model, *self.llm_models}

    @property
    def fallback_llm_base_urls(self) -> list[str]:
        """Endpoints of the `fallback_model` budget policy (comma-separated)."""
        return [u.strip() for u in self.fallback_llm_base_url.split(",") if u.strip()]

    @property
    def collection_name(self) -> str:
        """The Qdrant collection: RAGQ_QDRANT_COLLECTION, else named after the embedding
        model, so switching models never mixes vectors of two models in one collection."""
        model = re.sub(r"[^a-z0-9]+", "_", self.embeddings_model.lower()).strip("_")
        return self.qdrant_collection or f"ragq_{model}"

    @property
    def embedded_qdrant(self) -> bool:
        """True when Qdrant runs in qdrant-client's local mode inside the worker."""
        return not self.qdrant_url


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
