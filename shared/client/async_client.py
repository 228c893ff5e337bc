"""`AsyncClient`: the ragq API on one `httpx.AsyncClient`. Requests, retries, stream
resume and flows are the transport-free parts (`calls`, `retry`, `resume`, `base`,
`ingest`); this module only does their I/O."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import httpx
from httpx_sse import EventSource
from pydantic import BaseModel
from tenacity import AsyncRetrying

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


class AsyncClient(BaseClient):
    """The ragq API, asynchronously: `async with AsyncClient(api_key=...) as ragq:`."""

    def __init__(
        self, *args: Any, transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._http = httpx.AsyncClient(transport=transport, **self._http_options())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # -- I/O ------------------------------------------------------------------------------

    async def _send(
        self, call: calls.Call[Any], stats: ClientStats | None, stream: bool
    ) -> httpx.Response:
        self._count(stats)
        with translating():
            response: httpx.Response = await self._http.send(
                call.request(self._http), stream=stream
            )
            if response.is_error:
                await response.aread()
                await response.aclose()
                raise status_error(response)
        return response

    async def _call(self, call: calls.Call[T], stats: ClientStats | None = None) -> T:
        retrying = AsyncRetrying(**self._retrying(call, stats))
        response: httpx.Response = await retrying(self._send, call, stats, False)
        return call.parse(response)

    async def _run(self, flow: Flow, stats: ClientStats | None = None) -> Any:
        try:
            call = next(flow)
            while True:
                call = flow.send(await self._call(call, stats))
        except StopIteration as stop:
            return stop.value

    @contextlib.asynccontextmanager
    async def _events(self, call: calls.Call[httpx.Response]) -> AsyncIterator[EventSource]:
        response: httpx.Response = await AsyncRetrying(**self._retrying(call, None))(
            self._send, call, None, True
        )
        try:
            yield EventSource(response)
        finally:
            await response.aclose()

    # -- jobs -----------------------------------------------------------------------------

    async def submit(
        self, question: str, *, idempotency_key: str | None = None, **options: Any
    ) -> JobPublic:
        """Submit a question (`POST /v1/jobs`); options as in docs/API.md (`top_k`,
        `filters`, `priority`, `temperature`, `max_tokens`, `model`, `metadata`)."""
        return await self._call(calls.submit(question, options, idempotency_key))

    async def get(self, job_id: str) -> JobPublic:
        """The job as it stands."""
        return await self._call(calls.get_job(job_id))

    # ASYNC109: `timeout` also bounds the server-side long polls, which asyncio.timeout
    # around the call could not; the name is the one users of such clients expect
    async def wait(self, job_id: str, timeout: float | None = None) -> JobPublic:  # noqa: ASYNC109
        """Long-poll until the job is terminal, or `timeout` seconds pass (None: until
        terminal); returns the job as it then stands."""
        job: JobPublic = await self._run(wait_flow(job_id, timeout))
        return job

    async def cancel(self, job_id: str) -> JobPublic:
        """Cancel a queued or running job (a finished one raises `Conflict`)."""
        return await self._call(calls.cancel(job_id))

    async def stream(self, job_id: str, *, after: int = 0) -> AsyncIterator[JobEvent]:
        """The job's events after number `after`, until the terminal one. A dropped
        connection is resumed with `Last-Event-ID`, so no event is lost or repeated;
        `StreamResumeError` after `max_reconnects` drops in a row with nothing new."""
        state = ResumeState(job_id, self.policy, self.stats, after)
        while not state.done:
            with contextlib.suppress(APIConnectionError, httpx.TransportError):
                async with self._events(state.call()) as source:
                    async for sse in source.aiter_sse():
                        if (event := state.accept(sse)) is not None:
                            yield event
                        if state.done:
                            return
            await asyncio.sleep(state.dropped())

    async def ask(self, question: str, **options: Any) -> AsyncIterator[JobEvent]:
        """Submit a question and stream its events (see `submit` and `stream`)."""
        job = await self.submit(question, **options)
        async for event in self.stream(job.id):
            yield event

    async def answer(self, question: str, **options: Any) -> JobPublic:
        """Submit a question and return the job once it is terminal."""
        return await self.wait((await self.submit(question, **options)).id)

    # -- documents and usage --------------------------------------------------------------

    async def usage(self) -> UsagePublic:
        """Today's counters of the key's tenant."""
        return await self._call(calls.usage())

    async def add_document(
        self,
        text: str,
        *,
        title: str = "",
        id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> DocumentPublic:
        """Post one document for indexing (`POST /v1/documents`); it is `queued`."""
        body = calls.document_body(text, title=title, id=id, metadata=metadata)
        return await self._call(calls.add_document(body))

    async def get_document(self, document_id: str) -> DocumentPublic:
        """One document and its indexing status."""
        return await self._call(calls.get_document(document_id))

    async def list_documents(self, *, page_size: int = 100) -> AsyncIterator[DocumentPublic]:
        """Every document of the tenant, by id, fetched a page at a time."""
        cursor: str | None = None
        while True:
            page = await self._call(calls.list_documents(page_size, cursor))
            for document in page.data:
                yield document
            if not page.has_more or (cursor := page.next_cursor) is None:
                return

    async def delete_document(self, document_id: str) -> None:
        """Delete a document; its chunks leave retrieval at once."""
        await self._call(calls.delete_document(document_id))

    async def upload_document(
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
        return await self._call(call)

    async def document_states(self, ids: list[str]) -> list[DocumentState]:
        """The status of many documents at once (`missing` for an unknown id)."""
        states: list[DocumentState] = await self._run(states_flow(ids, wait=False))
        return states

    async def wait_for_documents(
        self,
        ids: list[str],
        timeout: float | None = None,  # noqa: ASYNC109 - bounds the long polls too
    ) -> list[DocumentState]:
        """Long-poll until each of `ids` is indexed, failed or missing, or `timeout`
        seconds pass (None: no limit); their states as they then stand."""
        flow = states_flow(ids, wait=True, timeout_s=timeout)
        states: list[DocumentState] = await self._run(flow)
        return states

    async def ingest(
        self, documents: Iterable[BaseModel | dict[str, Any]], **options: Unpack[IngestOptions]
    ) -> IngestSummary:
        """Post documents in bulk batches and (with `wait`, the default) long-poll until
        each is indexed or failed, calling `progress` after every step (`IngestOptions`)."""
        stats = ClientStats()
        summary: IngestSummary = await self._run(
            ingest_flow(documents, stats=stats, **options), stats
        )
        return summary
