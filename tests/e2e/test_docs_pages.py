"""`/docs` (Swagger UI) and `/redoc` render every operation of ragq's OpenAPI document in
headless Chromium with no network beyond ragq: their assets come from ragq itself."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.browser import needs_chromium, offline_page, screenshot_path
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, needs_chromium]
RENDER_TIMEOUT_MS = 90_000  # a loaded machine parses 1.5 MB of script slowly
# Redoc's sidebar tries to show Redocly's logo from its CDN and hides it when that fails
# (an <img onError>): decoration, not an asset the page needs; nothing else may go outside
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
SHOTS = {"/docs": "docs-swagger", "/redoc": "docs-redoc"}  # test-artifacts/<name>.png


async def _operations(stack: Stack) -> list[dict[str, Any]]:
    """Start ragq (the API is ready once a worker beats) and read its operations."""
    await stack.start_worker()
    await stack.start_api()
    async with httpx.AsyncClient(base_url=stack.url) as client:
        spec = (await client.get("/openapi.json")).json()
    return [op for path in spec["paths"].values() for op in path.values()]


@pytest.mark.parametrize(
    ("page_path", "operation", "allowed_outside"),
    [
        ("/docs", ".opblock", set()),
        ("/redoc", "[data-section-id^='tag/'][data-section-id*='/operation/']", {REDOC_LOGO}),
    ],
    ids=["swagger", "redoc"],
)
async def test_docs_page_renders_every_operation_offline(
    stack: Stack, page_path: str, operation: str, allowed_outside: set[str]
) -> None:
    """Every operation of /openapi.json is on the page; nothing it needs came from outside."""
    operations = await _operations(stack)
    async with offline_page(stack.url) as (page, outside):
        await page.goto(f"{stack.url}{page_path}")
        rendered = page.locator(operation)
        await rendered.first.wait_for(timeout=RENDER_TIMEOUT_MS)
        count = await rendered.count()
        await page.screenshot(path=screenshot_path(SHOTS[page_path]), full_page=True)
    assert set(outside.blocked) <= allowed_outside
    assert count == len(operations) > 10
