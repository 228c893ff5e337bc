"""When the client tries a request again, and how long it waits first; the counters of
what it waited. Transport-free: the sync and the async client hand the same options to
tenacity's `Retrying` and `AsyncRetrying`, so only the sleeping differs.

- 429 and 503 are retried for every request (the API refused it before doing anything),
  after their `Retry-After` plus a small random jitter; a `Retry-After` longer than
  `max_retry_wait_s` (a budget exhausted until midnight) is not waited: the error is raised.
- Transport errors (refused connection, timeout, a connection dropped mid-answer) are
  retried only for idempotent requests, with exponential backoff and jitter.
- Nothing else is retried: another 4xx will not change by trying again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tenacity import RetryCallState, retry_if_exception, stop_after_attempt

from shared.client.errors import APIConnectionError, APIStatusError

RETRY_STATUSES = frozenset({429, 503})


@dataclass
class ClientStats:
    """What one client (or one `ingest` call) sent and waited; waits are summed over
    requests, so concurrent requests on one async client can add up past the wall time."""

    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    rate_limited: int = 0  # 429/503 answers waited out
    waited_on_limits_s: float = 0.0  # seconds slept on Retry-After
    waited_on_errors_s: float = 0.0  # seconds slept backing off transport errors
    reconnects: int = 0  # event streams resumed after a drop


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; `rng` is injectable so tests can pin the jitter."""

    max_retries: int = 4
    max_retry_wait_s: float = 60.0  # a longer Retry-After is raised, not waited
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    jitter_ratio: float = 0.2  # of the Retry-After, at most jitter_max_s
    jitter_max_s: float = 1.0
    max_reconnects: int = 5  # consecutive event-stream drops without a new event
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def retryable(self, error: BaseException, *, idempotent: bool) -> bool:
        """Whether a request that failed with `error` is worth sending again."""
        if isinstance(error, APIStatusError):
            if error.status not in RETRY_STATUSES:
                return False
            return error.retry_after is None or error.retry_after <= self.max_retry_wait_s
        return idempotent and isinstance(error, APIConnectionError)

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (0-based) after a transport error: half
        the exponential step plus up to as much again at random ("equal jitter")."""
        step = min(self.backoff_max_s, self.backoff_initial_s * 2.0**attempt)
        return step / 2 + self.rng.uniform(0, step / 2)

    def delay(self, error: BaseException, attempt: int) -> float:
        """Seconds before retry number `attempt` (0-based) of a request that failed with a
        retryable `error`: its Retry-After plus jitter, else the backoff."""
        after = error.retry_after if isinstance(error, APIStatusError) else None
        if after is None:
            return self.backoff(attempt)
        jitter = self.rng.uniform(0, min(self.jitter_max_s, self.jitter_ratio * max(after, 1.0)))
        return min(after + jitter, self.max_retry_wait_s)

    def tenacity_options(self, *, idempotent: bool, stats: Iterable[ClientStats]) -> dict[str, Any]:
        """Options for tenacity's `Retrying` / `AsyncRetrying` around one request; each
        wait is counted in every one of `stats`."""
        counters = tuple(stats)

        def wait(state: RetryCallState) -> float:
            return self.delay(_error(state), state.attempt_number - 1)

        def before_sleep(state: RetryCallState) -> None:
            seconds = state.upcoming_sleep
            limited = isinstance(_error(state), APIStatusError)
            for counter in counters:
                counter.retries += 1
                if limited:
                    counter.rate_limited += 1
                    counter.waited_on_limits_s += seconds
                else:
                    counter.waited_on_errors_s += seconds

        return {
            "stop": stop_after_attempt(self.max_retries + 1),
            "retry": retry_if_exception(_predicate(self, idempotent)),
            "wait": wait,
            "before_sleep": before_sleep,
            "reraise": True,
        }


def _predicate(policy: RetryPolicy, idempotent: bool) -> Callable[[BaseException], bool]:
    return lambda error: policy.retryable(error, idempotent=idempotent)


def _error(state: RetryCallState) -> BaseException:
    outcome = state.outcome
    error = None if outcome is None else outcome.exception()
    assert error is not None  # tenacity waits only after a failed attempt
    return error
