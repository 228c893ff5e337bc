"""Documents through the API: uploads, offsets of every sample document, replacing
under concurrent queries, and deletion."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import auth, ingest, settled

pytestmark = pytest.mark.integration
CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus"


async def test_markdown_and_text_uploads_are_indexed(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """A multipart .md upload takes its title from the first heading, a .txt upload from
    the form field; both are indexed and answer questions."""
    key = await issue_key("acme")
    md = await api.post(
        "/v1/documents",
        files={"file": ("guide.md", b"# Deploy guide\n\nUse atlas rollout --canary 10.\n")},
        data={"id": "guide", "metadata": json.dumps({"product": "atlas"})},
        headers=auth(key),
    )
    txt = await api.post(
        "/v1/documents",
        files={"file": ("notes.txt", "Café hours: 08:00–17:00.\n".encode())},
        data={"title": "Café"},
        headers=auth(key),
    )
    guide = await settled(api, key, "guide")
    notes = await settled(api, key, txt.json()["id"])
    assert (md.status_code, txt.status_code) == (202, 202)
    assert (guide["title"], guide["status"], guide["metadata"]) == (
        "Deploy guide",
        "indexed",
        {"product": "atlas"},
    )
    assert (notes["title"], notes["status"]) == ("Café", "indexed")


@pytest.mark.parametrize(
    ("filename", "content", "status"),
    [
        ("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 415),
        ("report.pdf", b"\x89PNG\r\n\x1a\n\x00\x00", 415),  # a binary file named .pdf
        ("broken.pdf", b"%PDF-1.7 no objects, no pages", 422),
        ("page.html", b"<html>\x00\x01</html>", 415),
        ("binary.txt", b"text\x00with a NUL byte", 415),
        ("latin1.txt", "café".encode("latin-1"), 422),
        ("empty.md", b"   \n", 422),
    ],
)
async def test_unreadable_uploads_are_refused_and_nothing_is_stored(
    api: httpx.AsyncClient,
    issue_key: Callable[..., Any],
    filename: str,
    content: bytes,
    status: int,
) -> None:
    """Binary files (whatever their name says) get 415, non-UTF-8 or empty text and a
    PDF that cannot be read 422, with a clear problem body, and no document is created."""
    key = await issue_key("acme")
    response = await api.post(
        "/v1/documents", files={"file": (filename, content)}, headers=auth(key)
    )
    listing = (await api.get("/v1/documents", headers=auth(key))).json()
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]
    assert listing["data"] == []


async def test_other_content_types_are_415(
    api: httpx.AsyncClient, issue_key: Callable[..., Any]
) -> None:
    """A document body that is neither JSON nor multipart is refused with 415."""
    key = await issue_key("acme")
    response = await api.post(
        "/v1/documents",
        content=b"plain words",
        headers={**auth(key), "Content-Type": "text/plain"},
    )
    assert response.status_code == 415
    assert response.json()["type"].endswith("/unsupported-media-type")


async def test_every_sample_document_keeps_exact_offsets(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """Every sample document (code blocks, tables, CRLF, non-ASCII) is indexed, and every
    chunk retrieval returns is exactly text[start:end] of its source."""
    key = await issue_key("acme")
    manifest = [json.loads(line) for line in (CORPUS / "manifest.jsonl").read_text().splitlines()]
    texts = {}
    for entry in manifest:
        text = (CORPUS / entry["path"]).read_bytes().decode("utf-8")
        texts[entry["id"]] = text
        body = {"id": entry["id"], "title": entry["title"], "text": text}
        assert (await api.post("/v1/documents", json=body, headers=auth(key))).status_code == 202
    records = [await settled(api, key, doc_id) for doc_id in texts]
    checked = 0
    for entry in manifest:
        answer = (
            await api.post(
                "/v1/rag", json={"question": entry["title"], "top_k": 10}, headers=auth(key)
            )
        ).json()
        for c in answer["citations"]:
            assert texts[c["document_id"]][c["start"] : c["end"]] == c["text"]
            checked += 1
    assert {r["status"] for r in records} == {"indexed"}
    assert any("\r\n" in t for t in texts.values())
    assert checked >= 10 * len(manifest) // 2


async def test_replace_is_atomic_under_concurrent_queries(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """While a document is replaced, every answer cites exactly one version of it — the
    old or the new, never both and never none — and afterwards only the new one."""
    key = await issue_key("acme")
    old = {"id": "policy", "title": "Policy", "text": "The refund window is 30 days. " * 40}
    new = {"id": "policy", "title": "Policy", "text": "The refund window is 45 days. " * 40}
    await ingest(api, key, old)
    seen: list[set[str]] = []
    done = asyncio.Event()

    async def query() -> None:
        while True:  # at least one query each, however fast the replace is
            answer = (
                await api.post(
                    "/v1/rag", json={"question": "refund window", "top_k": 10}, headers=auth(key)
                )
            ).json()
            seen.append({"30" if "30 days" in c["text"] else "45" for c in answer["citations"]})
            if done.is_set():
                return

    queriers = [asyncio.create_task(query()) for _ in range(3)]
    await ingest(api, key, new)
    done.set()
    await asyncio.gather(*queriers)
    final = (
        await api.post(
            "/v1/rag", json={"question": "refund window", "top_k": 10}, headers=auth(key)
        )
    ).json()
    assert seen
    assert all(versions in ({"30"}, {"45"}) for versions in seen)
    assert {"45" if "45 days" in c["text"] else "30" for c in final["citations"]} == {"45"}
