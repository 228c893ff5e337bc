"""The ragq Python client, sync (`Client`) and async (`AsyncClient`): every route of
docs/API.md typed with the shared wire models, retries that honour `Retry-After`, event
streams that resume themselves, and bulk ingest with progress.

    from shared.client import Client

    with Client("http://127.0.0.1:8000", api_key=KEY) as ragq:
        for event in ragq.ask("How do I rotate the signing key?"):
            ...
"""

from shared.client.async_client import AsyncClient
from shared.client.bulk import DocumentState
from shared.client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    Conflict,
    InvalidRequest,
    NotFound,
    RagqError,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    StreamResumeError,
)
from shared.client.ingest import DocumentOutcome, IngestProgress, IngestSummary
from shared.client.retry import ClientStats, RetryPolicy
from shared.client.sync_client import Client

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ClientStats",
    "Conflict",
    "DocumentOutcome",
    "DocumentState",
    "IngestProgress",
    "IngestSummary",
    "InvalidRequest",
    "NotFound",
    "RagqError",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "StreamResumeError",
]
