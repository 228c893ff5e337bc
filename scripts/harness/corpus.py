"""A document corpus posted through the API, and the wait until the worker has indexed it.

A corpus folder holds `manifest.jsonl` (one `{"id", "path", "title", "metadata"}` per
line) and the files it names; `data/corpus/` is the sample one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from scripts.harness.processes import HarnessError
from scripts.harness.waiting import wait_until

INDEX_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class CorpusDoc:
    """One manifest entry with its text, as posted to `POST /v1/documents`."""

    id: str
    title: str
    text: str
    metadata: dict[str, Any]

    def body(self) -> dict[str, Any]:
        """The request body that creates it."""
        return {"id": self.id, "title": self.title, "text": self.text, "metadata": self.metadata}


def read_corpus(corpus: Path) -> list[CorpusDoc]:
    """The documents listed in `corpus/manifest.jsonl`, with their texts."""
    manifest = corpus / "manifest.jsonl"
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise HarnessError(f"cannot read the corpus manifest {manifest}: {exc}") from exc
    docs = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            text = (corpus / entry["path"]).read_text(encoding="utf-8")
            docs.append(
                CorpusDoc(entry["id"], entry["title"], text, dict(entry.get("metadata", {})))
            )
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise HarnessError(f"{manifest}:{lineno}: unusable entry: {exc!r}") from exc
    if not docs:
        raise HarnessError(f"{manifest} lists no documents")
    return docs


async def document_statuses(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Every document of the client's tenant by id (all pages of `GET /v1/documents`)."""
    docs: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 100}
    while True:
        response = await client.get("/v1/documents", params=params)
        if response.status_code != 200:
            raise HarnessError(f"GET /v1/documents answered {response.status_code}")
        page = response.json()
        docs.update({d["id"]: d for d in page["data"]})
        if not page.get("has_more"):
            return docs
        params["cursor"] = page["next_cursor"]


async def post_documents(client: httpx.AsyncClient, docs: Iterable[CorpusDoc]) -> None:
    """`POST /v1/documents` each one; anything but 202 is an error."""
    for doc in docs:
        response = await client.post("/v1/documents", json=doc.body())
        if response.status_code != 202:
            raise HarnessError(
                f"POST /v1/documents {doc.id} answered {response.status_code}: "
                f"{response.text[:300]}"
            )


async def wait_indexed(
    client: httpx.AsyncClient, ids: Iterable[str], *, timeout_s: float = INDEX_TIMEOUT_S
) -> None:
    """Wait until every document of `ids` is `indexed`; a `failed` one is an error."""
    pending = set(ids)

    async def indexed() -> bool:
        statuses = await document_statuses(client)
        status = {i: statuses.get(i, {}).get("status") for i in pending}
        failed = sorted(i for i in pending if status[i] == "failed")
        if failed:
            details = "; ".join(f"{i}: {statuses[i].get('error')}" for i in failed)
            raise HarnessError(f"indexing failed for {len(failed)} document(s): {details}")
        pending.difference_update(i for i in list(pending) if status[i] == "indexed")
        return not pending

    def not_indexed() -> str:
        return f"{len(pending)} document(s) not indexed: " + ", ".join(sorted(pending))

    await wait_until(indexed, timeout_s=timeout_s, failure=not_indexed)


async def ingest(
    client: httpx.AsyncClient, docs: list[CorpusDoc], *, timeout_s: float = INDEX_TIMEOUT_S
) -> None:
    """Post every document, then wait until all are indexed."""
    await post_documents(client, docs)
    await wait_indexed(client, [d.id for d in docs], timeout_s=timeout_s)
