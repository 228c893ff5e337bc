"""`GET /v1/documents/{id}/content`: the indexed text citations point into, per tenant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.conftest import auth, finished, ingest

pytestmark = pytest.mark.integration
DOC = {
    "id": "cafe-hours",
    "title": "Opening hours",
    "text": "# Opening hours\n\nThe café 🍰 opens at 08:00 and closes at 17:00 on weekdays.\n",
}


async def test_content_is_the_indexed_text_and_citations_index_into_it(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """The content is the posted text, as text/plain, and a citation's start..end (code
    points) of it is the citation's text."""
    key = await issue_key("acme")
    await ingest(api, key, DOC)
    response = await api.get(f"/v1/documents/{DOC['id']}/content", headers=auth(key))
    submitted = await api.post(
        "/v1/jobs", json={"question": "When does the café open?"}, headers=auth(key)
    )
    job = await finished(api, key, submitted.json()["id"])
    citations = job["result"]["citations"]
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == DOC["text"]
    assert citations
    assert [response.text[c["start"] : c["end"]] for c in citations] == [
        c["text"] for c in citations
    ]


async def test_content_needs_a_key_and_stays_in_its_tenant(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], worker: None
) -> None:
    """No key is a 401; another tenant's document, an unknown one and a deleted one are the
    same 404 problem."""
    key, other = await issue_key("acme"), await issue_key("globex")
    await ingest(api, key, DOC)
    path = f"/v1/documents/{DOC['id']}/content"
    anonymous = await api.get(path)
    foreign = await api.get(path, headers=auth(other))
    unknown = await api.get("/v1/documents/nope/content", headers=auth(key))
    assert (await api.delete(f"/v1/documents/{DOC['id']}", headers=auth(key))).status_code == 204
    deleted = await api.get(path, headers=auth(key))
    assert anonymous.status_code == 401
    assert [(r.status_code, r.headers["content-type"]) for r in (foreign, unknown, deleted)] == [
        (404, "application/problem+json")
    ] * 3
