"""`Client`: the ragq API on one `httpx.Client`, blocking. The same transport-free parts
as `AsyncClient` (`calls`, `retry`, `resume`, `base`, `ingest`); this module only does
their I/O, synchronously."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import httpx
from httpx_sse import EventSource
from pydantic import BaseModel
from tenacity import Retrying

from shared.client import calls
from shared.client.base import BaseClient, Flow, wait_flow
from shared.client.bulk import DocumentState, states_flow
from shared.client.errors import APIConnectionError, status_error, translating
from shared.client.ingest import IngestOptions, IngestSummary, ingest_flow
from shared.client.resume import ResumeState
from shared.client.retry import ClientStats
from shared.events import JobEvent
from shared.schemas.documents import DocumentPublic
from shared.schemas.jobs import JobPublic
from shared.schemas.usage import UsagePublic

T = TypeVar("T")


class Client(BaseClient):
    """The ragq API, blocking: `with Client(api_key=...) as ragq:`."""

    def __init__(
        self, *args: Any, transport: httpx.BaseTransport | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._http = httpx.Client(transport=transport, **self._http_options())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    # -- I/O ------------------------------------------------------------------------------

    def _send(
        self, call: calls.Call[Any], stats: ClientStats | None, stream: bool
    ) -> httpx.Response:
        self._count(stats)
        with translating():
            response: httpx.Response = self._http.send(call.request(self._http), stream=stream)
            if response.is_error:
                response.read()
                response.close()
                raise status_error(response)
        return response

    def _call(self, call: calls.Call[T], stats: ClientStats | None = None) -> T:
        retrying = Retrying(**self._retrying(call, stats))
        response = retrying(self._send, call, stats, False)
        return call.parse(response)

    def _run(self, flow: Flow, stats: ClientStats | None = None) -> Any:
        try:
            call = next(flow)
            while True:
                call = flow.send(self._call(call, stats))
        except StopIteration as stop:
            return stop.value

    @contextlib.contextmanager
    def _events(self, call: calls.Call[httpx.Response]) -> Iterator[EventSource]:
        response: httpx.Response = Retrying(**self._retrying(call, None))(
            self._send, call, None, True
        )
        try:
            yield EventSource(response)
        finally:
            response.close()

    # -- jobs -----------------------------------------------------------------------------

    def submit(
        self, question: str, *, idempotency_key: str | None = None, **options: Any
    ) -> JobPublic:
        """Submit a question (`POST /v1/jobs`); options as in docs/API.md (`top_k`,
        `filters`, `priority`, `temperature`, `max_tokens`, `model`, `metadata`)."""
        return self._call(calls.submit(question, options, idempotency_key))

    def get(self, job_id: str) -> JobPublic:
        """The job as it stands."""
        return self._call(calls.get_job(job_id))

    def wait(self, job_id: str, timeout: float | None = None) -> JobPublic:
        """Long-poll until the job is terminal, or `timeout` seconds pass (None: until
        terminal); returns the job as it then stands."""
        job: JobPublic = self._run(wait_flow(job_id, timeout))
        return job

    def cancel(self, job_id: str) -> JobPublic:
        """Cancel a queued or running job (a finished one raises `Conflict`)."""
        return self._call(calls.cancel(job_id))

    def stream(self, job_id: str, *, after: int = 0) -> Iterator[JobEvent]:
        """The job's events after number `after`, until the terminal one. A dropped
        connection is resumed with `Last-Event-ID`, so no event is lost or repeated;
        `StreamResumeError` after `max_reconnects` drops in a row with nothing new."""
        state = ResumeState(job_id, self.policy, self.stats, after)
        while not state.done:
            suppress = contextlib.suppress(APIConnectionError, httpx.TransportError)
            with suppress, self._events(state.call()) as source:
                for sse in source.iter_sse():
                    if (event := state.accept(sse)) is not None:
                        yield event
                    if state.done:
                        return
            time.sleep(state.dropped())  # noqa: TID251 - the sync client blocks by design

    def ask(self, question: str, **options: Any) -> Iterator[JobEvent]:
        """Submit a question and stream its events (see `submit` and `stream`)."""
        job = self.submit(question, **options)
        yield from self.stream(job.id)

    def answer(self, question: str, **options: Any) -> JobPublic:
        """Submit a question and return the job once it is terminal."""
        return self.wait((self.submit(question, **options)).id)

    # -- documents and usage --------------------------------------------------------------

    def usage(self) -> UsagePublic:
        """Today's counters of the key's tenant."""
        return self._call(calls.usage())

    def add_document(
        self,
        text: str,
        *,
        title: str = "",
        id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> DocumentPublic:
        """Post one document for indexing (`POST /v1/documents`); it is `queued`."""
        body = calls.document_body(text, title=title, id=id, metadata=metadata)
        return self._call(calls.add_document(body))

    def get_document(self, document_id: str) -> DocumentPublic:
        """One document and its indexing status."""
        return self._call(calls.get_document(document_id))

    def list_documents(self, *, page_size: int = 100) -> Iterator[DocumentPublic]:
        """Every document of the tenant, by id, fetched a page at a time."""
        cursor: str | None = None
        while True:
            page = self._call(calls.list_documents(page_size, cursor))
            yield from page.data
            if not page.has_more or (cursor := page.next_cursor) is None:
                return

    def delete_document(self, document_id: str) -> None:
        """Delete a document; its chunks leave retrieval at once."""
        self._call(calls.delete_document(document_id))

    def upload_document(
        self,
        filename: str,
        content: bytes,
        *,
        title: str | None = None,
        id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> DocumentPublic:
        """Upload a file for indexing (text, Markdown, PDF or HTML; its kind from
        `filename`), as multipart `POST /v1/documents`."""
        call = calls.upload_document(filename, content, title=title, id=id, metadata=metadata)
        return self._call(call)

    def document_states(self, ids: list[str]) -> list[DocumentState]:
        """The status of many documents at once (`missing` for an unknown id)."""
        states: list[DocumentState] = self._run(states_flow(ids, wait=False))
        return states

    def wait_for_documents(
        self, ids: list[str], timeout: float | None = None
    ) -> list[DocumentState]:
        """Long-poll until each of `ids` is indexed, failed or missing, or `timeout`
        seconds pass (None: no limit); their states as they then stand."""
        flow = states_flow(ids, wait=True, timeout_s=timeout)
        states: list[DocumentState] = self._run(flow)
        return states

    def ingest(
        self, documents: Iterable[BaseModel | dict[str, Any]], **options: Unpack[IngestOptions]
    ) -> IngestSummary:
        """Post documents in bulk batches and (with `wait`, the default) long-poll until
        each is indexed or failed, calling `progress` after every step (`IngestOptions`)."""
        stats = ClientStats()
        summary: IngestSummary = self._run(ingest_flow(documents, stats=stats, **options), stats)
        return summary
