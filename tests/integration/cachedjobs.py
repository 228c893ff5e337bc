"""Jobs in known states for the HTTP caching tests: one completed over a small document,
one still queued (no worker runs in those tests unless they start one)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.conftest import auth, finished, ingest

DOC = {
    "id": "rotation",
    "title": "Key rotation",
    "text": "Rotate keys with vault keys rotate. Pinned consumers fail with VLT-4031.",
}


async def completed_job(api: httpx.AsyncClient, key: str) -> dict[str, Any]:
    await ingest(api, key, DOC)
    posted = await api.post("/v1/jobs", json={"question": "What is VLT-4031?"}, headers=auth(key))
    job = await finished(api, key, posted.json()["id"])
    assert job["status"] == "completed"
    return job


async def queued_job(api: httpx.AsyncClient, key: str) -> str:
    posted = await api.post("/v1/jobs", json={"question": "still waiting?"}, headers=auth(key))
    assert posted.status_code == 202, posted.text
    return str(posted.json()["id"])
