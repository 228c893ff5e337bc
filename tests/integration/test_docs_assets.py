"""`/docs` and `/redoc` are served with their scripts and styles from ragq itself, so they
work on a machine without internet (the browser test renders them: tests/e2e)."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.integration
ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_page_assets_come_from_ragq(api: httpx.AsyncClient, page: str) -> None:
    """Every script, style and icon the page names is a path of ragq that answers 200."""
    html = (await api.get(page)).text
    assets = [a for a in ASSET.findall(html) if not a.startswith("#")]
    served = [(await api.get(a)).status_code for a in assets]
    assert assets
    assert all(a.startswith("/static/docs/") for a in assets), assets
    assert served == [200] * len(assets)
