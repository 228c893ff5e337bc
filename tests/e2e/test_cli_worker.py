"""`ragq worker` on a local Qdrant folder another worker holds: one line saying the folder
is in use and what to do instead (exit 1), while the first worker keeps serving."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_cli_errors import run_ragq

pytestmark = pytest.mark.e2e


async def test_a_second_worker_on_the_same_qdrant_folder_is_one_line(stack: Stack) -> None:
    """The second worker exits 1 naming the folder, RAGQ_QDRANT_PATH and RAGQ_QDRANT_URL;
    the first is still running and the API still counts it ready."""
    first = await stack.start_worker()
    await stack.start_api()  # ready once the first worker beats: it holds the folder
    folder = stack.env["RAGQ_QDRANT_PATH"]
    code, lines = await run_ragq("worker", env=stack.env)
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        ready = await client.get("/readyz")
    assert code == 1
    assert lines == [
        f"ragq worker: the Qdrant folder {folder} (RAGQ_QDRANT_PATH) is in use by another "
        "ragq worker or process, and local mode allows one process per folder: stop the "
        "other one, set a different RAGQ_QDRANT_PATH, or run a Qdrant server and set "
        "RAGQ_QDRANT_URL (needed for more than one worker)."
    ]
    assert first.alive
    assert ready.status_code == 200
    assert ready.json()["checks"]["workers"] == 1
