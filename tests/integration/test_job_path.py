"""The job path on real Redis with an in-process worker: submit, poll, stream, cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.conftest import auth, finished, ingest, sse_events

pytestmark = pytest.mark.integration

ROTATION = {
    "id": "key-rotation",
    "title": "Rotating signing keys",
    "text": (
        "# Rotating signing keys\n\nRotate a signing key with `vault keys rotate`. "
        "The overlap window defaults to 72 hours.\n\n## Errors\n\n"
        "A pinned consumer makes the rotation fail with VLT-4031. Unpin it first.\n"
    ),
    "metadata": {"product": "vault"},
}
BILLING = {
    "id": "invoices",
    "title": "Invoice runs",
    "text": (
        "# Invoice runs\n\nInvoices are generated on the first day of each month at 02:00 UTC.\n"
    ),
    "metadata": {"product": "ledger"},
}


async def test_answer_cites_chunks_whose_offsets_hold(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """A completed job cites the ingested text, and text[start:end] == citation text."""
    key = await issue_key("acme")
    await ingest(api, key, ROTATION)
    await ingest(api, key, BILLING)
    submitted = await api.post(
        "/v1/jobs", json={"question": "What does VLT-4031 mean?", "top_k": 2}, headers=auth(key)
    )
    job = await finished(api, key, submitted.json()["id"])
    result = job["result"]
    first = result["citations"][0]
    assert submitted.status_code == 202
    assert submitted.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "completed"
    assert result["degraded"] is True
    assert result["degraded_reason"] == "no_llm_configured"
    assert "VLT-4031" in result["answer"]
    assert first["document_id"] == "key-rotation"
    assert ROTATION["text"][first["start"] : first["end"]] == first["text"]


async def test_stream_replays_and_deltas_make_the_answer(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """The SSE stream of a finished job replays every event in order, ending with
    job.completed; the deltas concatenate to answer.completed and to result.answer."""
    key = await issue_key("acme")
    await ingest(api, key, ROTATION)
    job_id = (
        await api.post("/v1/jobs", json={"question": "rotate key"}, headers=auth(key))
    ).json()["id"]
    job = await finished(api, key, job_id)
    events = await sse_events(api, key, job_id)
    names = [e[1] for e in events]
    deltas = "".join(d["delta"] for _, name, d in events if name == "answer.delta")
    completed = next(d for _, name, d in events if name == "answer.completed")
    assert [e[0] for e in events] == list(range(1, len(events) + 1))
    assert all(d["sequence_number"] == i for i, _, d in events)
    assert names[:3] == ["job.queued", "job.in_progress", "retrieval.completed"]
    assert names[-1] == "job.completed"
    assert deltas == completed["answer"] == job["result"]["answer"]
    assert events[-1][2]["result"]["answer"] == job["result"]["answer"]


async def test_resume_from_an_event_number(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """Last-Event-ID and ?starting_after=N both resume right after event N."""
    key = await issue_key("acme")
    await ingest(api, key, ROTATION)
    job_id = (await api.post("/v1/jobs", json={"question": "rotate"}, headers=auth(key))).json()[
        "id"
    ]
    await finished(api, key, job_id)
    everything = await sse_events(api, key, job_id)
    by_query = await sse_events(api, key, job_id, starting_after=2)
    from httpx_sse import aconnect_sse

    by_header = []
    headers = {**auth(key), "Last-Event-ID": "3"}
    async with aconnect_sse(api, "GET", f"/v1/jobs/{job_id}/events", headers=headers) as source:
        by_header = [int(e.id) async for e in source.aiter_sse()]
    assert [e[0] for e in by_query] == [e[0] for e in everything[2:]]
    assert by_header == [e[0] for e in everything[3:]]


async def test_long_poll_returns_the_finished_job(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """GET ?wait=N answers as soon as the job is terminal, with the result in it."""
    key = await issue_key("acme")
    job_id = (await api.post("/v1/jobs", json={"question": "anything"}, headers=auth(key))).json()[
        "id"
    ]
    job = (await api.get(f"/v1/jobs/{job_id}?wait=30", headers=auth(key))).json()
    assert job["status"] == "completed"
    assert job["result"]["citations"] == []


async def test_rag_waits_for_the_answer(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """POST /v1/rag returns 200 with the answer and citations in one call."""
    key = await issue_key("acme")
    await ingest(api, key, BILLING)
    response = await api.post(
        "/v1/rag", json={"question": "When are invoices generated?"}, headers=auth(key)
    )
    body = response.json()
    assert response.status_code == 200
    assert body["job_id"].startswith("job_")
    assert "02:00 UTC" in body["answer"]
    assert body["citations"][0]["document_id"] == "invoices"


async def test_rag_times_out_with_the_job_id(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """With no worker, POST /v1/rag gives 504 after its timeout, naming the job to poll."""
    key = await issue_key("acme")
    response = await api.post("/v1/rag", json={"question": "q", "timeout": 1}, headers=auth(key))
    body = response.json()
    job = (await api.get(f"/v1/jobs/{body['job_id']}", headers=auth(key))).json()
    assert response.status_code == 504
    assert body["type"].endswith("/timeout")
    assert job["status"] == "queued"


async def test_rag_streams_when_asked(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """POST /v1/rag with stream=true answers with the job's SSE stream."""
    from httpx_sse import aconnect_sse

    key = await issue_key("acme")
    body = {"question": "q", "stream": True}
    async with aconnect_sse(api, "POST", "/v1/rag", json=body, headers=auth(key)) as source:
        names = [e.event async for e in source.aiter_sse()]
    assert names[0] == "job.queued"
    assert names[-1] == "job.completed"


async def test_other_tenants_see_nothing(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """Another tenant's job and document answer 404 on every route, like unknown ids."""
    owner, other = await issue_key("acme"), await issue_key("globex")
    await ingest(api, owner, ROTATION)
    job_id = (await api.post("/v1/jobs", json={"question": "q"}, headers=auth(owner))).json()["id"]
    await finished(api, owner, job_id)
    attempts = [
        await api.get(f"/v1/jobs/{job_id}", headers=auth(other)),
        await api.get(f"/v1/jobs/{job_id}/events", headers=auth(other)),
        await api.post(f"/v1/jobs/{job_id}/cancel", headers=auth(other)),
        await api.get("/v1/documents/key-rotation", headers=auth(other)),
        await api.delete("/v1/documents/key-rotation", headers=auth(other)),
    ]
    listing = (await api.get("/v1/documents", headers=auth(other))).json()
    still_there = await api.get("/v1/documents/key-rotation", headers=auth(owner))
    assert [r.status_code for r in attempts] == [404] * 5
    assert listing["data"] == []
    assert still_there.status_code == 200


async def test_other_tenants_documents_are_never_retrieved(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """Retrieval only searches the caller's own documents."""
    owner, other = await issue_key("acme"), await issue_key("globex")
    await ingest(api, owner, ROTATION)
    response = await api.post("/v1/rag", json={"question": "VLT-4031"}, headers=auth(other))
    assert response.json()["citations"] == []


async def test_idempotency_key(api: httpx.AsyncClient, issue_key: Callable[..., Any]) -> None:
    """The same Idempotency-Key and body return the same job; another body gets 409."""
    key = await issue_key("acme")
    headers = {**auth(key), "Idempotency-Key": "order-42"}
    first = await api.post("/v1/jobs", json={"question": "a"}, headers=headers)
    again = await api.post("/v1/jobs", json={"question": "a"}, headers=headers)
    changed = await api.post("/v1/jobs", json={"question": "b"}, headers=headers)
    other_tenant = await api.post(
        "/v1/jobs", json={"question": "b"}, headers={**headers, **auth(await issue_key("globex"))}
    )
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["id"] == again.json()["id"]
    assert changed.status_code == 409
    assert changed.json()["type"].endswith("/conflict")
    assert other_tenant.status_code == 202


async def test_cancel_a_queued_job(api: httpx.AsyncClient, issue_key: Callable[..., Any]) -> None:
    """A queued job cancels to `cancelled`, its stream ends with job.cancelled, and a
    second cancel is a 409."""
    key = await issue_key("acme")
    job_id = (await api.post("/v1/jobs", json={"question": "q"}, headers=auth(key))).json()["id"]
    cancelled = await api.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key))
    again = await api.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key))
    events = await sse_events(api, key, job_id)
    assert cancelled.json()["status"] == "cancelled"
    assert again.status_code == 409
    assert [e[1] for e in events] == ["job.queued", "job.cancelled"]


async def test_deleted_document_is_not_cited(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """After DELETE, a document is gone from the API and never cited again."""
    key = await issue_key("acme")
    await ingest(api, key, ROTATION)
    before = (await api.post("/v1/rag", json={"question": "VLT-4031"}, headers=auth(key))).json()
    deleted = await api.delete("/v1/documents/key-rotation", headers=auth(key))
    after = (await api.post("/v1/rag", json={"question": "VLT-4031"}, headers=auth(key))).json()
    gone = await api.get("/v1/documents/key-rotation", headers=auth(key))
    assert before["citations"][0]["document_id"] == "key-rotation"
    assert deleted.status_code == 204
    assert gone.status_code == 404
    assert after["citations"] == []


async def test_documents_page_with_a_cursor(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """Listing with limit and cursor visits every document exactly once."""
    key = await issue_key("acme")
    ids = [f"doc-{i:02d}" for i in range(7)]
    for doc_id in ids:
        body = {"id": doc_id, "title": doc_id, "text": f"text of {doc_id}"}
        assert (await api.post("/v1/documents", json=body, headers=auth(key))).status_code == 202
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/documents", params=params, headers=auth(key))).json()
        seen += [d["id"] for d in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
