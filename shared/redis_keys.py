"""Every Redis key and queue name ragq uses, in one place.

ragq's own keys start with the configured prefix. arq's keys (`arq:job:*`,
`arq:in-progress:*`, `arq:retry:*`) are global constants of arq and cannot be
prefixed, so give each deployment (and the tests) its own Redis DB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

QueueName = Literal["interactive", "batch"]
QUEUES: tuple[QueueName, ...] = ("interactive", "batch")

# arq resolves job functions by name; the API enqueues by these names only.
DRAIN_BUCKET_S = 5  # jobs taken from a queue are counted per bucket of this many seconds

ANSWER_JOB = "answer"
INGEST_JOB = "ingest"
PURGE_JOB = "purge_document"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix."""

    prefix: str = "ragq"

    def queue(self, name: str) -> str:
        """The arq queue (sorted set) for a priority class."""
        return f"{self.prefix}:queue:{name}"

    def queue_notify(self, name: str) -> str:
        """List that enqueue pushes a token to, so idle workers wake at once."""
        return f"{self.prefix}:queue:{name}:notify"

    def job(self, job_id: str) -> str:
        """Hash holding a job record."""
        return f"{self.prefix}:job:{job_id}"

    def job_events(self, job_id: str) -> str:
        """Stream of a job's events; entry ids are `0-<sequence>`."""
        return f"{self.prefix}:job:{job_id}:events"

    def job_done(self, job_id: str) -> str:
        """Stream that gets one entry when the job ends; waiters block on it."""
        return f"{self.prefix}:job:{job_id}:done"

    @property
    def cancel_channel(self) -> str:
        """Pub/sub channel on which the API announces cancelled job ids."""
        return f"{self.prefix}:cancel"

    def idempotency(self, tenant: str, key: str) -> str:
        """Idempotency record of one tenant's request key."""
        return f"{self.prefix}:idem:{tenant}:{key}"

    def api_key(self, digest: str) -> str:
        """Hash of an API key's record, by the SHA-256 of the key."""
        return f"{self.prefix}:apikey:{digest}"

    @property
    def api_key_index(self) -> str:
        """Hash of key id → digest, for listing and revoking."""
        return f"{self.prefix}:apikeys"

    def ratelimit(self, key_id: str) -> str:
        """Sorted set of an API key's requests admitted in the last minute, scored by time."""
        return f"{self.prefix}:ratelimit:{key_id}"

    def document(self, tenant: str, document_id: str) -> str:
        """Hash holding a document record."""
        return f"{self.prefix}:doc:{tenant}:{document_id}"

    def document_text(self, tenant: str, document_id: str, version: str) -> str:
        """The source text of one version of a document."""
        return f"{self.prefix}:doctext:{tenant}:{document_id}:{version}"

    def document_events(self, tenant: str) -> str:
        """Stream of a tenant's document ids whose version was indexed or failed, or that
        were deleted; `POST /v1/documents/status?wait` blocks on it."""
        return f"{self.prefix}:docevents:{tenant}"

    def documents(self, tenant: str) -> str:
        """Sorted set of a tenant's document ids, scored by creation order."""
        return f"{self.prefix}:docs:{tenant}"

    @property
    def index_base(self) -> str:
        """The embedding model serving tenants that have no record of their own."""
        return f"{self.prefix}:index:base"

    def index_tenant(self, tenant: str) -> str:
        """The embedding model (hence collection) serving one tenant."""
        return f"{self.prefix}:index:tenant:{tenant}"

    @property
    def index_migration(self) -> str:
        """Lock of the worker moving tenants to the configured embedding model."""
        return f"{self.prefix}:index:migration"

    def embedding(self, model: str, digest: str) -> str:
        """Cached embedding of a text (by SHA-256) under one model."""
        return f"{self.prefix}:emb:{model}:{digest}"

    def breaker(self, target: str) -> str:
        """Hash of an LLM endpoint's circuit breaker; `:calls` / `:fails` hold its window.

        The endpoint's base URL is escaped (`%xx` for anything but letters, digits, `.`,
        `-`, `_`), which keeps the key readable and distinct URLs on distinct keys.
        """
        safe = "".join(c if c.isalnum() or c in ".-_" else f"%{ord(c):02x}" for c in target)
        return f"{self.prefix}:breaker:{safe}"

    @property
    def workers(self) -> str:
        """Hash of live worker id → heartbeat JSON."""
        return f"{self.prefix}:workers"

    def spend(self, day: str, scope: str) -> str:
        """Committed spend (nano-USD) of one UTC day; scope `service` or `tenant:<name>`."""
        return f"{self.prefix}:spend:{day}:{scope}"

    def budget_alerted(self, day: str, scope: str) -> str:
        """Set once per scope and day when its budget is first found exhausted."""
        return f"{self.prefix}:spend:{day}:{scope}:alerted"

    def usage(self, day: str, tenant: str) -> str:
        """Hash of a tenant's counters for one UTC day (requests, jobs, tokens, hits)."""
        return f"{self.prefix}:usage:{day}:{tenant}"

    def leases(self, key_id: str) -> str:
        """Sorted set of an API key's unfinished jobs, scored by lease expiry (ms)."""
        return f"{self.prefix}:leases:{key_id}"

    def drain_bucket(self, queue: str, at_s: float) -> str:
        """Counter of the jobs taken from a queue in the `DRAIN_BUCKET_S` bucket holding the
        time `at_s` (epoch seconds): the queue's drain rate."""
        return f"{self.prefix}:drain:{queue}:{math.floor(at_s / DRAIN_BUCKET_S)}"

    def drain_window(self, queue: str, now_s: float, window_s: int) -> list[str]:
        """The drain counters of the last `window_s` seconds up to `now_s`, oldest first."""
        return [
            self.drain_bucket(queue, now_s - back * DRAIN_BUCKET_S)
            for back in range(window_s // DRAIN_BUCKET_S, -1, -1)
        ]

    def corpus(self, tenant: str) -> str:
        """A tenant's corpus version: bumped by every publish and delete."""
        return f"{self.prefix}:corpus:{tenant}"

    def answer(self, tenant: str, corpus: str, digest: str) -> str:
        """A cached answer, by corpus version and the hash of its full prompt and parameters."""
        return f"{self.prefix}:ac:{tenant}:{corpus}:{digest}"

    def answer_pointer(self, tenant: str, corpus: str, digest: str) -> str:
        """Request hash → the prompt hash its answer is cached under (same corpus version)."""
        return f"{self.prefix}:acreq:{tenant}:{corpus}:{digest}"

    def inflight(self, tenant: str, corpus: str, digest: str) -> str:
        """The job currently answering a cacheable request (the coalescing leader)."""
        return f"{self.prefix}:inflight:{tenant}:{corpus}:{digest}"

    def followers(self, job_id: str) -> str:
        """Set of jobs attached to a running identical job."""
        return f"{self.prefix}:job:{job_id}:followers"

    def dev(self, name: str) -> str:
        """Markers kept by `ragq dev`."""
        return f"{self.prefix}:dev:{name}"
