"""One function per API route (docs/API.md): the request to send and the parser of its
answer, as a transport-free `Call` that the sync and the async client both send."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from shared.schemas.documents import DocumentList, DocumentPublic
from shared.schemas.jobs import JobPublic
from shared.schemas.usage import UsagePublic

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

MAX_JOB_WAIT_S = 30.0  # GET /v1/jobs/{id}?wait= upper bound


@dataclass(frozen=True)
class Call(Generic[T]):
    """A request and how to read its (successful) answer. `idempotent` allows retrying it
    after a transport error; `hold_s` is how long the server may hold it (a long poll),
    added to the read timeout."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    files: Mapping[str, Any] | None = None  # multipart parts (with `data`)
    data: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotent: bool = False
    hold_s: float = 0.0

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The httpx request of this call, on a client's base URL, headers and timeout."""
        timeout = http.timeout
        if self.hold_s:
            timeout = httpx.Timeout(
                connect=timeout.connect,
                read=None if timeout.read is None else timeout.read + self.hold_s,
                write=timeout.write,
                pool=timeout.pool,
            )
        return http.build_request(
            self.method,
            self.path,
            params=dict(self.params),
            json=self.json,
            files=self.files,
            data=self.data,
            headers=dict(self.headers),
            timeout=timeout,
        )


def json_model(cls: type[M]) -> Callable[[httpx.Response], M]:
    """A parser of a JSON answer into `cls`."""
    return lambda response: cls.model_validate_json(response.content)


def _nothing(response: httpx.Response) -> None:
    return None


def _raw(response: httpx.Response) -> httpx.Response:
    return response


def segment(value: str) -> str:
    """An id as one URL path segment."""
    return quote(value, safe="")


def submit(
    question: str, options: Mapping[str, Any], idempotency_key: str | None
) -> Call[JobPublic]:
    """`POST /v1/jobs`; the options are sent as given (the server validates them)."""
    headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
    return Call(
        "POST",
        "/v1/jobs",
        json_model(JobPublic),
        json={"question": question, **options},
        headers=headers,
        idempotent=idempotency_key is not None,  # the same key returns the same job
    )


def get_job(job_id: str, wait_s: float = 0.0) -> Call[JobPublic]:
    """`GET /v1/jobs/{id}`, long-polling up to `wait_s` seconds (capped at 30)."""
    wait_s = max(0.0, min(wait_s, MAX_JOB_WAIT_S))
    params = {"wait": round(wait_s, 3)} if wait_s else {}
    path = f"/v1/jobs/{segment(job_id)}"
    return Call("GET", path, json_model(JobPublic), params, idempotent=True, hold_s=wait_s)


def cancel(job_id: str) -> Call[JobPublic]:
    """`POST /v1/jobs/{id}/cancel` (cancelling twice changes nothing more)."""
    return Call(
        "POST", f"/v1/jobs/{segment(job_id)}/cancel", json_model(JobPublic), idempotent=True
    )


def events(job_id: str, after: int) -> Call[httpx.Response]:
    """`GET /v1/jobs/{id}/events` after event `after`. Not idempotent for retrying: a
    dropped stream is resumed by the stream's own loop, which knows the last event."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    if after:
        headers["Last-Event-ID"] = str(after)
    return Call("GET", f"/v1/jobs/{segment(job_id)}/events", _raw, headers=headers)


def usage() -> Call[UsagePublic]:
    """`GET /v1/usage`."""
    return Call("GET", "/v1/usage", json_model(UsagePublic), idempotent=True)


def add_document(body: Mapping[str, Any]) -> Call[DocumentPublic]:
    """`POST /v1/documents` (JSON); idempotent when it names its id (a re-post replaces)."""
    return Call(
        "POST",
        "/v1/documents",
        json_model(DocumentPublic),
        json=dict(body),
        idempotent=body.get("id") is not None,
    )


def get_document(document_id: str) -> Call[DocumentPublic]:
    """`GET /v1/documents/{id}`."""
    path = f"/v1/documents/{segment(document_id)}"
    return Call("GET", path, json_model(DocumentPublic), idempotent=True)


def list_documents(limit: int, cursor: str | None) -> Call[DocumentList]:
    """`GET /v1/documents?limit=&cursor=`: one page."""
    params: dict[str, Any] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", "/v1/documents", json_model(DocumentList), params, idempotent=True)


def delete_document(document_id: str) -> Call[None]:
    """`DELETE /v1/documents/{id}` (204)."""
    path = f"/v1/documents/{segment(document_id)}"
    return Call("DELETE", path, _nothing, idempotent=True)


def document_body(
    text: str, *, title: str, id: str | None, metadata: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The `POST /v1/documents` JSON body of one document (no `id`: the server picks one)."""
    body: dict[str, Any] = {"text": text, "title": title, "metadata": dict(metadata or {})}
    if id is not None:
        body["id"] = id
    return body


def upload_document(
    filename: str,
    content: bytes,
    *,
    title: str | None,
    id: str | None,
    metadata: Mapping[str, Any] | None,
) -> Call[DocumentPublic]:
    """`POST /v1/documents` as multipart: a file (its kind from `filename`) and optional
    `title`, `id` and `metadata` fields; idempotent when it names its id."""
    fields = {"title": title, "id": id}
    data = {name: value for name, value in fields.items() if value is not None}
    if metadata:
        data["metadata"] = jsonlib.dumps(dict(metadata))
    return Call(
        "POST",
        "/v1/documents",
        json_model(DocumentPublic),
        files={"file": (filename, content)},
        data=data,
        idempotent=id is not None,
    )
