"""Text out of uploaded PDF and HTML files: the text ragq stores is what these return, so a
citation's `start`/`end` are exact offsets into it, as for any document.

Both run on a worker thread (they are CPU-bound). A file whose bytes are not of the type
its name or content type claims is refused with 415; one of the right type that cannot be
read is a 422.
"""

from __future__ import annotations

import asyncio
import io
import re
from typing import Literal

from pypdf import PdfReader
from pypdf.errors import PyPdfError
from selectolax.lexbor import LexborHTMLParser

from shared.errors import InvalidInput, UnsupportedMediaType

Kind = Literal["text", "pdf", "html"]
SUFFIXES: dict[str, Kind] = {
    ".txt": "text",
    ".md": "text",
    ".markdown": "text",
    ".pdf": "pdf",
    ".html": "html",
    ".htm": "html",
}
TYPES: dict[str, Kind] = {
    "text/plain": "text",
    "text/markdown": "text",
    "text/x-markdown": "text",
    "application/pdf": "pdf",
    "text/html": "html",
    "application/xhtml+xml": "html",
}
_DROPPED = "script, style, noscript, template, svg, head"
_BLOCKS = "p, div, section, article, li, tr, pre, blockquote, table, ul, ol, dl, dt, dd, br"
_BLANK_RUNS = re.compile(r"\n{3,}")


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, extra={"errors": [{"loc": ["body", "file"], "msg": message}]})


def _pdf(name: str, raw: bytes) -> tuple[str, str | None]:
    if not raw.lstrip()[:5] == b"%PDF-":
        raise UnsupportedMediaType(f"{name} is not a PDF (it does not start with %PDF-)")
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            raise _invalid(f"{name} is an encrypted PDF: upload it without a password")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise _invalid(f"{name} could not be read as a PDF: {exc}") from None
    return "\n\n".join(p for p in pages if p), (title or None)


def _html(name: str, raw: bytes) -> tuple[str, str | None]:
    if b"\x00" in raw:
        raise UnsupportedMediaType(f"{name} looks binary, not an HTML page")
    try:
        markup = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise _invalid(f"{name} is not valid UTF-8 (byte {exc.start})") from None
    tree = LexborHTMLParser(markup)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node is not None else None
    for node in tree.css(_DROPPED):
        node.decompose()
    for level in range(1, 7):  # headings become Markdown headings: chunking follows them
        for heading in tree.css(f"h{level}"):
            heading.replace_with(f"\n\n{'#' * level} {heading.text(strip=True)}\n\n")
    for block in tree.css(_BLOCKS):
        block.insert_after("\n")
    root = tree.body or tree.root
    text = root.text(separator="", strip=False) if root is not None else ""
    lines = "\n".join(line.strip() for line in text.splitlines())
    return _BLANK_RUNS.sub("\n\n", lines).strip(), title or None


async def extract(kind: Literal["pdf", "html"], name: str, raw: bytes) -> tuple[str, str | None]:
    """The text of a PDF or HTML file and its own title, if it names one."""
    reader = _pdf if kind == "pdf" else _html
    text, title = await asyncio.to_thread(reader, name, raw)
    if not text.strip():
        raise _invalid(f"{name} holds no text ragq can read (a scanned PDF needs OCR first)")
    return text, title
