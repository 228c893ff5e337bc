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


async def _operations(stack: Stack) -> list[dict[str, Any]]:
    """Start ragq (the API is ready once a worker beats) and read its operations."""
    await stack.start_worker()
    await stack.start_api()
    async with httpx.AsyncClient(base_url=stack.url) as client:
        spec = (await client.get("/openapi.json")).json()
    return [op for path in spec["paths"].values() for op in path.values()]


async def test_swagger_ui_renders_every_operation_offline(stack: Stack) -> None:
    operations = await _operations(stack)
    async with offline_page(stack.url) as (page, outside):
        await page.goto(f"{stack.url}/docs")  # type: ignore[attr-defined]
        blocks = page.locator(".opblock")  # type: ignore[attr-defined]
        await blocks.first.wait_for(timeout=RENDER_TIMEOUT_MS)
        rendered = await blocks.count()
        await page.screenshot(path=screenshot_path("docs-swagger"), full_page=True)  # type: ignore[attr-defined]
    assert outside.blocked == []
    assert rendered == len(operations) > 10


async def test_redoc_renders_every_operation_offline(stack: Stack) -> None:
    operations = await _operations(stack)
    async with offline_page(stack.url) as (page, outside):
        await page.goto(f"{stack.url}/redoc")  # type: ignore[attr-defined]
        sections = page.locator("[data-section-id^='tag/'][data-section-id*='/operation/']")  # type: ignore[attr-defined]
        await sections.first.wait_for(timeout=RENDER_TIMEOUT_MS)
        rendered = await sections.count()
        await page.screenshot(path=screenshot_path("docs-redoc"))  # type: ignore[attr-defined]
    assert set(outside.blocked) <= {REDOC_LOGO}
    assert rendered == len(operations)
