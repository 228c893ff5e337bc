"""The playground: the web page at `/` and its scripts, styles and icon, shipped in
`api/playground/` and served by ragq itself (no CDN), none of them behind a key."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from shared.errors import NotFound

router = APIRouter(include_in_schema=False)
ASSETS = "/static/playground"
_ROOT = Path(__file__).resolve().parent.parent / "playground"
# the only files served, with their types: nothing else in the folder is reachable
_TYPES = {
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "sse.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "answer.js": "text/javascript; charset=utf-8",
    "documents.js": "text/javascript; charset=utf-8",
    "jobs.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# the page runs only its own scripts and styles and talks only to ragq: document text it
# shows can never run, load or send anything
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidated (ETag) so an upgrade shows at once
}


@router.get("/")
async def playground() -> FileResponse:
    """The playground page."""
    return FileResponse(
        _ROOT / "index.html", media_type="text/html; charset=utf-8", headers=_HEADERS
    )


@router.get(ASSETS + "/{name}")
async def playground_asset(name: str) -> FileResponse:
    """One of the playground's scripts, styles or icon."""
    media_type = _TYPES.get(name)
    if media_type is None:
        raise NotFound(f"No playground asset {name!r}.")
    return FileResponse(_ROOT / name, media_type=media_type, headers=_HEADERS)
