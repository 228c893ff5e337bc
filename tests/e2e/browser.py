"""Headless Chromium for e2e tests: Debian's `chromium` driven by Playwright through its
executable path (no browser download), with every request to anything but ragq blocked
and recorded, and a screenshot per test kept under `test-artifacts/` (RAGQ_TEST_ARTIFACTS)
for CI to publish."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(
    os.environ.get("RAGQ_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium absent (Debian: apt-get install chromium)"
)


@dataclass
class Offline:
    """What a page asked of the outside world (all of it refused), what it asked of ragq,
    and the errors its console and scripts reported."""

    blocked: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@asynccontextmanager
async def offline_page(origin: str) -> AsyncIterator[tuple[Page, Offline]]:
    """A page of a fresh headless Chromium that may reach `origin` only."""
    from playwright.async_api import Route, async_playwright

    outside = Offline()

    async def only_ragq(route: Route) -> None:
        if route.request.url.startswith(origin):
            outside.requested.append(route.request.url)
            await route.continue_()
        else:
            outside.blocked.append(route.request.url)
            await route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            outside.errors.append(f"console: {message.text}")

    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.route("**/*", only_ragq)
            page.on("pageerror", lambda error: outside.errors.append(f"pageerror: {error}"))
            page.on("console", on_console)
            yield page, outside
        finally:
            await browser.close()


def screenshot_path(name: str) -> Path:
    """Where a test's screenshot goes."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"
