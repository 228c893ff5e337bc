"""The client's exceptions, one tree, and the translation of a failed response or a
transport error into it (shared by the sync and the async client).

This is the client's own tree, raised on the caller's side of the HTTP boundary; the
server's `shared.errors` is never raised by the client.

RagqError
├── APIConnectionError          the API could not be reached, or the connection dropped
│   ├── APITimeoutError
│   └── StreamResumeError       an event stream could not be resumed
└── APIStatusError              the API answered with a problem+json error
    ├── InvalidRequest          400, 405, 413, 415, 422, 431
    ├── AuthenticationError     401
    ├── NotFound                404
    ├── Conflict                409
    ├── RateLimited             429
    ├── ServiceUnavailable      503
    └── ServerError             any other 5xx (504 included)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from shared.schemas.common import utcnow


class RagqError(Exception):
    """Something went wrong talking to ragq."""


class APIConnectionError(RagqError):
    """The API could not be reached, or the connection dropped before the answer ended."""


class APITimeoutError(APIConnectionError):
    """The API did not answer within the client's timeout."""


class StreamResumeError(APIConnectionError):
    """A job's event stream kept dropping and could not be resumed."""

    def __init__(self, job_id: str, last_event_id: int, failures: int) -> None:
        self.job_id = job_id
        self.last_event_id = last_event_id
        self.failures = failures
        super().__init__(
            f"The event stream of job {job_id} dropped {failures} times in a row without a new "
            f"event; the last event received was {last_event_id}. Resume later with "
            f"stream({job_id!r}, after={last_event_id})."
        )


class APIStatusError(RagqError):
    """The API answered with an error (docs/API.md, Errors): its problem+json fields."""

    def __init__(self, status: int, problem: dict[str, Any], headers: httpx.Headers) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", "about:blank"))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail", ""))
        self.request_id = str(problem.get("request_id") or headers.get("x-request-id") or "")
        self.retry_after = retry_after_s(headers.get("retry-after"))
        self.errors: list[Any] = list(problem.get("errors") or [])
        super().__init__(f"{status} {self.title}: {self.detail} (request {self.request_id})")


class InvalidRequest(APIStatusError):
    """The request was refused as invalid (a schema violation, too large, a bad type)."""


class AuthenticationError(APIStatusError):
    """The API key is missing, unknown or revoked."""


class NotFound(APIStatusError):
    """No such job or document (or another tenant's)."""


class Conflict(APIStatusError):
    """The request conflicts with the resource's state (e.g. cancel of a finished job)."""


class RateLimited(APIStatusError):
    """A rate limit, concurrency quota, queue or budget refused the request; see
    `retry_after`."""


class ServiceUnavailable(APIStatusError):
    """The API is up but a dependency is not (503)."""


class ServerError(APIStatusError):
    """The API failed (a 5xx other than 503), or a submit-and-wait timed out (504)."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    401: AuthenticationError,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
    503: ServiceUnavailable,
}


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None when
    absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - utcnow()).total_seconds(), 0.0)


def status_error(response: httpx.Response) -> APIStatusError:
    """The exception of a (read) error response: its problem+json, or what there is of a
    body that is not one (a proxy's HTML page)."""
    problem: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            problem = body
    if not problem:
        problem = {"title": response.reason_phrase, "detail": response.text[:500]}
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else InvalidRequest)
    return cls(status, problem, response.headers)


def raise_for_status(response: httpx.Response) -> None:
    """Raise the typed error of a (read) response with a 4xx or 5xx status."""
    if response.status_code >= 400:
        raise status_error(response)


@contextlib.contextmanager
def translating() -> Iterator[None]:
    """Turn httpx's transport errors into the client's (a context manager, so the sync and
    the async client share it)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise APITimeoutError(f"ragq did not answer in time: {exc!r}") from exc
    except httpx.TransportError as exc:
        raise APIConnectionError(f"cannot talk to ragq: {exc!r}") from exc
