"""The playground at `/` is an HTML page under a strict Content-Security-Policy whose
scripts, styles and icon all come from ragq itself, none of them behind a key (the browser
tests drive the page: tests/e2e/test_playground.py)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest

pytestmark = pytest.mark.integration
ASSETS = "/static/playground/"
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# the modules app.js loads: `import … from "./answer.js"`
IMPORT = re.compile(r"""^\s*import\s[^;]*?from\s+["']\./([^"']+)["'];""", re.MULTILINE)


class _Page(HTMLParser):
    """The assets a page loads, its inline scripts and its inline style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if "style" in named or any(name.startswith("on") for name in named):
            self.inline.append(f"<{tag} {named}>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self._in_script = True
            if named.get("src"):
                self.assets.append(str(named["src"]))
        if tag == "link" and named.get("href"):
            self.assets.append(str(named["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data.strip()[:80])


def _csp(header: str) -> dict[str, set[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: set(values) for name, *values in directives}


async def test_root_is_the_playground_page_under_a_strict_csp(api: httpx.AsyncClient) -> None:
    """`/` answers the page with no key: HTML, nosniff, a CSP that lets it run and reach only
    ragq's own files and API, and no inline script, style or handler the CSP would block."""
    response = await api.get("/")
    page = _Page()
    page.feed(response.text)
    csp = _csp(response.headers["content-security-policy"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert {name: csp.get(name) for name in ("default-src", "script-src", "connect-src")} == {
        "default-src": {"'self'"},
        "script-src": {"'self'"},
        "connect-src": {"'self'"},
    }
    assert csp["object-src"] == {"'none'"}
    assert csp["frame-ancestors"] == {"'none'"}
    assert not any("unsafe" in value for values in csp.values() for value in values)
    assert page.inline == []
    assert '<form id="key-form"' in response.text


async def test_every_asset_of_the_page_answers_without_a_key(api: httpx.AsyncClient) -> None:
    """Every script, module it imports, style and icon is a ragq path that answers 200 with
    its own content type and nosniff, with no key sent."""
    page = _Page()
    page.feed((await api.get("/")).text)
    queue, seen, served = list(page.assets), set(), {}
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        response = await api.get(path)
        served[path] = (
            response.status_code,
            response.headers.get("content-type"),
            response.headers.get("x-content-type-options"),
        )
        if path.endswith(".js"):
            queue.extend(ASSETS + name for name in IMPORT.findall(response.text))
    expected = {path: (200, TYPES[path[path.rindex(".") :]], "nosniff") for path in sorted(served)}
    assert all(path.startswith(ASSETS) for path in served), sorted(served)
    assert {f"{ASSETS}app.js", f"{ASSETS}app.css", f"{ASSETS}favicon.svg"} <= set(served)
    assert len(served) >= 6  # app.js and the modules it imports
    assert served == expected


@pytest.mark.parametrize(
    "path", ["/static/playground/index.html", "/static/playground/nope.js", "/static/playground/"]
)
async def test_unknown_playground_paths_are_404_problems(api: httpx.AsyncClient, path: str) -> None:
    """A path under the playground that is none of its assets is the usual 404 problem."""
    response = await api.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
