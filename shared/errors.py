"""The one exception tree of ragq; routes and jobs raise these, `api/errors.py` maps them.

RagqError
├── Unauthorized
├── NotFound
├── Conflict
├── PayloadTooLarge
├── HeadersTooLarge
├── UnsupportedMediaType
├── InvalidInput
├── RateLimited
├── Overloaded
├── BudgetExhausted
├── NotReady
├── Timeout
└── UpstreamError
    ├── UpstreamUnavailable
    │   └── CircuitOpen
    └── UpstreamTimeout
"""

from __future__ import annotations

from typing import Any


class RagqError(Exception):
    """Something went wrong in ragq."""

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or (self.__doc__ or "").strip()
        self.retry_after = retry_after
        self.extra = extra or {}
        super().__init__(self.detail)


class Unauthorized(RagqError):
    """A valid API key is required."""


class NotFound(RagqError):
    """No such resource."""


class Conflict(RagqError):
    """The request conflicts with the resource's current state."""


class PayloadTooLarge(RagqError):
    """The request body is larger than this route accepts."""


class HeadersTooLarge(RagqError):
    """The request's header fields are larger than the API accepts."""


class UnsupportedMediaType(RagqError):
    """This content type cannot be read."""


class InvalidInput(RagqError):
    """The request is not valid."""


class RateLimited(RagqError):
    """The key's request rate or concurrent-job quota is exhausted."""


class Overloaded(RagqError):
    """The queue is full; try again later."""


class BudgetExhausted(RagqError):
    """The spend budget is exhausted."""


class NotReady(RagqError):
    """A dependency is unavailable."""


class Timeout(RagqError):
    """The job did not finish within the requested time; it keeps running."""


class UpstreamError(RagqError):
    """An upstream service failed."""


class UpstreamUnavailable(UpstreamError):
    """An upstream service is unavailable."""


class UpstreamTimeout(UpstreamError):
    """An upstream service timed out."""


class CircuitOpen(UpstreamUnavailable):
    """The endpoint's circuit breaker is open: the call was not made."""
