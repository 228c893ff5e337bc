"""Reading problem+json answers in tests: the status, content type and problem type of a
response, and the triple a validation error has."""

from __future__ import annotations

import httpx

VALIDATION = (422, "application/problem+json", "validation-error")
JSON = {"Content-Type": "application/json"}


def problem(response: httpx.Response) -> tuple[int, str, str]:
    """Status, content type and problem type suffix of a response."""
    kind = response.json().get("type", "") if response.content else ""
    return response.status_code, response.headers["content-type"], kind.rsplit("/", 1)[-1]
