"""What `ragq ingest` loads from the paths it is given: documents read from files, and the
files it could not read, each with the reason.

A folder is read recursively for the kinds the API reads (`.md`, `.markdown`, `.txt`,
`.pdf`, `.html`, `.htm`); other files in a folder are counted as ignored, not failed. A file
named on the command line is always tried, and a kind the API cannot read is a skip.

Text and Markdown are read here (UTF-8) and sent in bulk; a PDF or HTML page is sent as an
upload, since its text is extracted by the API. A document's id is its path: the file's stem
when the file was named, else its path inside the folder (`guide/install.md` →
`guide:install`), with characters ids cannot hold replaced by `-`. So one file always loads
under the same id, and a second run replaces (or, unchanged, skips) what the first loaded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
UPLOAD_SUFFIXES = frozenset({".pdf", ".html", ".htm"})
MAX_ID_CHARS = 128
_NOT_ID = re.compile(r"[^A-Za-z0-9_.:-]")


@dataclass(frozen=True, slots=True)
class TextFile:
    """A text or Markdown file, read: sent in a bulk request."""

    path: Path
    id: str
    title: str
    text: str

    def document(self) -> dict[str, str]:
        """The document as the bulk endpoint takes it."""
        return {"id": self.id, "title": self.title, "text": self.text}


@dataclass(frozen=True, slots=True)
class UploadFile:
    """A PDF or HTML file: uploaded as it is, its text extracted by the API."""

    path: Path
    id: str
    data: bytes

    @property
    def sha256(self) -> str:
        """The hash of the file's bytes: a re-run skips an upload whose bytes are unchanged."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Found:
    """Everything the paths hold: what to load, what could not be read, what was ignored."""

    texts: list[TextFile] = field(default_factory=list)
    uploads: list[UploadFile] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, why)
    ignored: int = 0  # files in folders of a kind ragq does not read

    @property
    def total(self) -> int:
        """Files found that ragq reads or tried to read."""
        return len(self.texts) + len(self.uploads) + len(self.skipped)


def document_id(relative: PurePath) -> str:
    """The id a file loads under: its path without the suffix, `/` as `:`."""
    parts = [*relative.parent.parts, relative.stem] if relative.parent.parts else [relative.stem]
    return _NOT_ID.sub("-", ":".join(parts))[-MAX_ID_CHARS:] or "document"


def _title(text: str, fallback: str) -> str:
    heading = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), "")
    return (heading or fallback)[:500]


def _read(found: Found, path: Path, doc_id: str) -> None:
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES | UPLOAD_SUFFIXES:
        found.skipped.append((path, "not a kind ragq reads (.md .txt .pdf .html)"))
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        found.skipped.append((path, exc.strerror or str(exc)))
        return
    if suffix in UPLOAD_SUFFIXES:
        found.uploads.append(UploadFile(path, doc_id, data))
        return
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        found.skipped.append((path, "not UTF-8 text"))
        return
    if not text.strip():
        found.skipped.append((path, "empty"))
        return
    found.texts.append(TextFile(path, doc_id, _title(text, path.stem), text))


def find_documents(paths: Iterable[str]) -> Found:
    """Read every document the paths name (files, and folders recursively)."""
    found = Found()
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            _read(found, path, document_id(PurePath(path.name)))
            continue
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            if file.suffix.lower() in TEXT_SUFFIXES | UPLOAD_SUFFIXES:
                _read(found, file, document_id(file.relative_to(path)))
            else:
                found.ignored += 1
    return found
