"""PDF and HTML uploads: their text is extracted, indexed and cited with offsets that are
exact in the extracted text; the document's title comes from the file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api.extract import _html, _pdf
from tests.integration.conftest import auth, settled
from tests.integration.pdfs import make_pdf

pytestmark = pytest.mark.integration

PDF = make_pdf(
    [
        ["Rotating signing keys", "Run vault keys rotate to rotate a signing key."],
        ["Errors", "VLT-4031 means a consumer still pins the old key."],
    ],
    title="Key rotation guide",
)
HTML = (
    b"<!doctype html><html><head><title>Deploy guide</title>"
    b"<script>document.title = 'never indexed'</script><style>p {color: red}</style></head>"
    b"<body><h1>Deploying atlas</h1><p>Use <b>atlas rollout</b> with a canary of 10 percent."
    b"</p><h2>Rolling back</h2><p>Run atlas undo to roll a deploy back &amp; restore it.</p>"
    b"</body></html>"
)


async def _upload(api: httpx.AsyncClient, key: str, name: str, raw: bytes, doc_id: str) -> None:
    posted = await api.post(
        "/v1/documents", files={"file": (name, raw)}, data={"id": doc_id}, headers=auth(key)
    )
    assert posted.status_code == 202, posted.text


async def test_pdf_and_html_uploads_are_cited_at_exact_offsets(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    key = await issue_key("acme")
    await _upload(api, key, "rotation.pdf", PDF, "rotation")
    await _upload(api, key, "deploy.html", HTML, "deploy")
    records = [await settled(api, key, d) for d in ("rotation", "deploy")]
    texts = {"rotation": _pdf("rotation.pdf", PDF)[0], "deploy": _html("deploy.html", HTML)[0]}
    cited: dict[str, list[dict[str, Any]]] = {}
    for question in ("What does VLT-4031 mean?", "How do I roll back an atlas deploy?"):
        body = {"question": question, "top_k": 4}
        answer = (await api.post("/v1/rag", json=body, headers=auth(key))).json()
        for c in answer["citations"]:
            cited.setdefault(c["document_id"], []).append(c)
    assert [(r["status"], r["title"]) for r in records] == [
        ("indexed", "Key rotation guide"),
        ("indexed", "Deploy guide"),
    ]
    assert set(cited) == {"rotation", "deploy"}
    for doc_id, citations in cited.items():
        for c in citations:
            assert texts[doc_id][c["start"] : c["end"]] == c["text"]
    assert "VLT-4031" in texts["rotation"]
    assert "never indexed" not in texts["deploy"]
    assert "# Deploying atlas" in texts["deploy"]
    assert "roll a deploy back & restore it" in texts["deploy"]
