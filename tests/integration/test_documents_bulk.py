"""Bulk loading through the API: many documents per request (JSON and NDJSON), each
queued, unchanged or failed on its own, its limits, and waiting for many documents at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from shared.config import Settings
from shared.contenthash import content_sha256
from tests.integration.conftest import auth
from tests.integration.problems import problem

pytestmark = pytest.mark.integration

DOCS = [
    {"id": "zephyr", "title": "Zephyr gateway", "text": "The zephyr gateway listens on 7443."},
    {"id": "quasar", "title": "Quasar backups", "text": "Quasar backups run nightly at 02:00."},
    {
        "id": "nimbus",
        "title": "Nimbus",
        "text": "Nimbus rotates its keys every 90 days.",
        "metadata": {"team": "sec"},
    },
]


async def bulk(api: httpx.AsyncClient, key: str, docs: list[Any], **extra: Any) -> dict[str, Any]:
    """A JSON bulk load that answers 200; its body."""
    response = await api.post(
        "/v1/documents/bulk", json={"documents": docs, **extra}, headers=auth(key)
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def status(
    api: httpx.AsyncClient, key: str, ids: list[str], wait: float = 60
) -> dict[str, Any]:
    """`POST /v1/documents/status`, waiting up to `wait` seconds; its body."""
    response = await api.post(
        "/v1/documents/status", json={"ids": ids, "wait": wait}, headers=auth(key)
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def by_id(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The documents of a status answer, by id."""
    return {d["id"]: d for d in listing["data"]}


async def test_json_bulk_is_queued_indexed_and_cited(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """A JSON bulk load queues every document with a job and its content hash; a status
    wait returns once all are indexed, and a question about one cites it first."""
    key = await issue_key("acme")
    loaded = await bulk(api, key, DOCS)
    settled = await status(api, key, [d["id"] for d in DOCS])
    answer = (
        await api.post(
            "/v1/rag", json={"question": "Which port does zephyr listen on?"}, headers=auth(key)
        )
    ).json()
    hashes = [content_sha256(d["title"], d["text"], d.get("metadata", {})) for d in DOCS]
    assert (loaded["object"], loaded["queued"], loaded["unchanged"], loaded["failed"]) == (
        "bulk_result",
        3,
        0,
        0,
    )
    assert [(i["index"], i["id"], i["status"]) for i in loaded["data"]] == [
        (0, "zephyr", "queued"),
        (1, "quasar", "queued"),
        (2, "nimbus", "queued"),
    ]
    assert all(i["job_id"].startswith("job_") and i["error"] is None for i in loaded["data"])
    assert [i["content_sha256"] for i in loaded["data"]] == hashes
    assert settled["pending"] == 0
    assert [(d["id"], d["status"], d["content_sha256"]) for d in settled["data"]] == [
        (d["id"], "indexed", h) for d, h in zip(DOCS, hashes, strict=True)
    ]
    assert answer["citations"][0]["document_id"] == "zephyr"


async def test_ndjson_bulk_skips_blank_lines_and_names_new_documents(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """An NDJSON body loads one document per line (blank lines ignored); a document sent
    without an id gets a `doc_…` id, and the document object carries its content hash."""
    key = await issue_key("acme")
    lines = [json.dumps(DOCS[0]), "", json.dumps({"title": "Untitled", "text": "Lone words."})]
    response = await api.post(
        "/v1/documents/bulk",
        content="\n".join(lines) + "\n\n",
        headers={**auth(key), "Content-Type": "application/x-ndjson"},
    )
    loaded = response.json()
    new_id = loaded["data"][1]["id"]
    settled = await status(api, key, ["zephyr", new_id])
    record = (await api.get(f"/v1/documents/{new_id}", headers=auth(key))).json()
    assert response.status_code == 200
    assert [i["status"] for i in loaded["data"]] == ["queued", "queued"]
    assert new_id.startswith("doc_")
    assert [d["status"] for d in settled["data"]] == ["indexed", "indexed"]
    assert record["content_sha256"] == content_sha256("Untitled", "Lone words.", {})


async def test_invalid_documents_fail_alone(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """Documents without text, with blank text, an unknown field or of the wrong JSON type
    fail with a 422-like error naming the field, a repeated id fails with a 409-like one, and
    the valid documents beside them are indexed."""
    key = await issue_key("acme")
    items: list[Any] = [
        DOCS[0],
        {"id": "no-text", "title": "Nothing"},
        {"id": "blank", "text": "   "},
        {"id": "extra", "text": "Words.", "colour": "red"},
        42,
        {**DOCS[1], "id": "zephyr"},
        DOCS[1],
    ]
    loaded = await bulk(api, key, items)
    settled = await status(api, key, ["zephyr", "quasar", "no-text"])
    results = loaded["data"]
    errors = [(i["error"] or {}).get("status") for i in results]
    assert [i["status"] for i in results] == ["queued", *["failed"] * 5, "queued"]
    assert errors == [None, 422, 422, 422, 422, 409, None]
    assert [i["id"] for i in results[1:6]] == ["no-text", "blank", "extra", None, "zephyr"]
    assert "text" in results[1]["error"]["detail"]
    assert results[1]["error"]["errors"][0]["loc"] == ["body", "documents", 1, "text"]
    assert "colour" in results[3]["error"]["detail"]
    assert "index 0" in results[5]["error"]["detail"]
    assert (loaded["queued"], loaded["unchanged"], loaded["failed"]) == (2, 0, 5)
    assert [d["status"] for d in settled["data"]] == ["indexed", "indexed", "missing"]
    assert by_id(settled)["zephyr"]["title"] == "Zephyr gateway"


async def test_resending_loads_only_what_changed(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """Sending the same bulk again leaves every document as it was (`unchanged`, same job,
    same indexed_at); a changed text reloads only that document; skip_unchanged=false
    reloads all of them."""
    key = await issue_key("acme")
    ids = [d["id"] for d in DOCS]
    first = await bulk(api, key, DOCS)
    before = by_id(await status(api, key, ids))
    again = await bulk(api, key, DOCS)
    after_again = by_id(await status(api, key, ids, wait=0))
    edited = [DOCS[0], {**DOCS[1], "text": "Quasar backups run hourly."}, DOCS[2]]
    changed = await bulk(api, key, edited)
    after_change = by_id(await status(api, key, ids))
    forced = await bulk(api, key, edited, skip_unchanged=False)
    assert [i["status"] for i in again["data"]] == ["unchanged"] * 3
    assert [i["job_id"] for i in again["data"]] == [i["job_id"] for i in first["data"]]
    assert after_again == before
    assert [i["status"] for i in changed["data"]] == ["unchanged", "queued", "unchanged"]
    assert after_change["quasar"]["indexed_at"] != before["quasar"]["indexed_at"]
    assert [after_change[d]["indexed_at"] for d in ("zephyr", "nimbus")] == [
        before[d]["indexed_at"] for d in ("zephyr", "nimbus")
    ]
    assert [i["status"] for i in forced["data"]] == ["queued"] * 3
    assert forced["data"][0]["job_id"] != first["data"][0]["job_id"]


async def test_a_bulk_load_is_one_request_for_the_rate_limit(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """A key allowed 2 requests a minute loads 3 documents in one request and waits for
    them in a second; its third request is refused."""
    key = await issue_key("acme", rpm=2)
    loaded = await bulk(api, key, DOCS)
    settled = await status(api, key, [d["id"] for d in DOCS])
    refused = await api.get("/v1/documents", headers=auth(key))
    assert loaded["queued"] == 3
    assert settled["pending"] == 0
    assert problem(refused)[::2] == (429, "rate-limited")


async def test_status_answers_at_once_holds_until_its_wait_and_names_missing_ids(
    api: httpx.AsyncClient,
    issue_key: Callable[..., Any],
    settings: Settings,
    start_worker: Callable[[Settings], Awaitable[None]],
) -> None:
    """With no worker running, wait=0 answers the pending count at once and a short wait
    answers the same state when it runs out (not an error); once a worker runs, a wait
    returns with every document indexed, an unknown id `missing` and pending 0."""
    key = await issue_key("acme")
    other = await issue_key("globex")
    await bulk(api, key, DOCS[:2])
    ids = ["zephyr", "ghost", "quasar"]
    now = await status(api, key, ids, wait=0)
    held = await status(api, key, ids, wait=1)
    foreign = await status(api, other, ["zephyr"], wait=0)
    await start_worker(settings)
    done = await status(api, key, ids)
    assert (now["object"], now["pending"]) == ("list", 2)
    assert [d["status"] for d in now["data"]] == ["queued", "missing", "queued"]
    assert held["pending"] == 2
    assert foreign["data"] == [{"id": "zephyr", "object": "document", "status": "missing"}]
    assert done["pending"] == 0
    assert [(d["id"], d["status"]) for d in done["data"]] == [
        ("zephyr", "indexed"),
        ("ghost", "missing"),
        ("quasar", "indexed"),
    ]


async def test_a_delete_ends_a_wait_for_the_document(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """With no worker to index it, a wait for a queued document returns once the document
    is deleted: it is `missing`, and nothing is pending."""
    key = await issue_key("acme")
    await bulk(api, key, DOCS[:1])
    waiting = asyncio.create_task(status(api, key, ["zephyr"]))
    deleted = await api.delete("/v1/documents/zephyr", headers=auth(key))
    after = await waiting
    assert deleted.status_code == 204
    assert (after["pending"], after["data"][0]["status"]) == (0, "missing")
