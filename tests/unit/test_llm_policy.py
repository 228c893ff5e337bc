"""The LLM client's resilience policy without services: which failures are the endpoint's
(retried, counted by its breaker) and how an endpoint URL becomes a breaker key."""

from __future__ import annotations

import httpx2
import openai
import pytest

from shared.redis_keys import Keys
from workers.rag.llm import _endpoint_failed

REQUEST = httpx2.Request("POST", "http://llm.test/v1/chat/completions")


def status_error(status: int) -> openai.APIStatusError:
    """The SDK's exception for an HTTP error answer."""
    response = httpx2.Response(status, request=REQUEST)
    return openai.APIStatusError(f"HTTP {status}", response=response, body=None)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_server_errors_and_429_are_the_endpoints_failure(status: int) -> None:
    """5xx and 429 are retried and count against the breaker."""
    assert _endpoint_failed(status_error(status)) is True


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_client_errors_are_not_the_endpoints_failure(status: int) -> None:
    """4xx other than 429 is our request's fault: neither retried nor counted."""
    assert _endpoint_failed(status_error(status)) is False


@pytest.mark.parametrize(
    "exc",
    [
        openai.APIConnectionError(request=REQUEST),
        openai.APITimeoutError(request=REQUEST),
        httpx2.ConnectError("refused"),
    ],
)
def test_connection_errors_and_timeouts_are_the_endpoints_failure(exc: Exception) -> None:
    """Connection errors and timeouts are retried and count against the breaker."""
    assert _endpoint_failed(exc) is True


def test_errors_of_our_own_are_not_the_endpoints_failure() -> None:
    """A bug of ours (any non-vendor exception) is not blamed on the endpoint."""
    assert _endpoint_failed(ValueError("bad")) is False


def test_breaker_keys_are_readable_and_distinct_per_endpoint() -> None:
    """URLs differing only in punctuation get different keys, with no raw `:` or `/`."""
    keys = Keys("ragq")
    urls = ["http://vllm-0:8000/v1", "http://vllm-0:8000_v1", "http://vllm-0.8000/v1"]
    names = [keys.breaker(url) for url in urls]
    assert names[0] == "ragq:breaker:http%3a%2f%2fvllm-0%3a8000%2fv1"
    assert len(set(names)) == len(urls)
