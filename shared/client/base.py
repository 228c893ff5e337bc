"""What the sync and the async client share besides the calls: their settings (base URL,
key, timeout, retry policy), the counters, and the transport-free flows they run (a
generator that yields calls and receives their answers)."""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from typing import Any

import httpx

from shared.client import calls
from shared.client.calls import MAX_JOB_WAIT_S, Call
from shared.client.retry import ClientStats, RetryPolicy
from shared.schemas.jobs import TERMINAL_STATUSES, JobPublic

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 60.0  # per request; a long poll adds the seconds it asks the server to hold
USER_AGENT = "ragq-client/0.1"

Flow = Generator[Call[Any], Any, Any]


class BaseClient:
    """Settings and counters of a ragq client. `api_key` defaults to `$RAGQ_API_KEY`
    (read when the client is made, not at import); `max_retries` is the policy's unless a
    whole `retry_policy` is given. `stats` counts requests, retries, rate-limit waits and
    stream resumes over the client's life."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_S,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        policy = retry_policy or RetryPolicy()
        if max_retries is not None:
            policy = RetryPolicy(**{**vars(policy), "max_retries": max_retries})
        self.base_url = base_url
        self.api_key = api_key if api_key is not None else os.environ.get("RAGQ_API_KEY")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.policy = policy
        self.stats = ClientStats()

    @property
    def waited_on_limits_s(self) -> float:
        """Seconds this client has slept on `Retry-After` (429/503), summed over requests."""
        return self.stats.waited_on_limits_s

    def _http_options(self) -> dict[str, Any]:
        headers = {"User-Agent": USER_AGENT}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return {"base_url": self.base_url, "headers": headers, "timeout": self.timeout}

    def _retrying(self, call: Call[Any], stats: ClientStats | None) -> dict[str, Any]:
        counters = (self.stats,) if stats is None else (self.stats, stats)
        return self.policy.tenacity_options(idempotent=call.idempotent, stats=counters)

    def _count(self, stats: ClientStats | None) -> None:
        self.stats.requests += 1
        if stats is not None:
            stats.requests += 1


def wait_flow(job_id: str, timeout_s: float | None) -> Flow:
    """Long-poll a job (`?wait=`, at most 30 s a request) until it is terminal or
    `timeout_s` passes (None: until terminal); returns the job as it then stands."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        job: JobPublic = yield calls.get_job(job_id, MAX_JOB_WAIT_S if left is None else left)
        if job.status in TERMINAL_STATUSES or (
            deadline is not None and time.monotonic() >= deadline
        ):
            return job
