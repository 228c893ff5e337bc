"""`ragq ingest`: load files and folders of documents through the API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from scripts.clicommon import DEFAULT_URL, api_headers


def add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `ragq ingest`."""
    parser.add_argument("paths", nargs="+", help="files, or folders to read recursively")
    parser.add_argument("--url", default=DEFAULT_URL, help="the ragq API (default: %(default)s)")
    parser.add_argument("--key", help="API key (default: $RAGQ_API_KEY)")


def _files(paths: list[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in {".md", ".txt"})
        else:
            yield path


def run_ingest(args: argparse.Namespace) -> int:
    """`ragq ingest`: load files through the API; exit 1 when any was not loaded."""
    files = list(_files(args.paths))
    failures = 0
    with httpx.Client(base_url=args.url, headers=api_headers(args.key), timeout=60) as client:
        for n, path in enumerate(files, start=1):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:  # say so, go on with the others
                failures += 1
                why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
                print(f"[{n}/{len(files)}] {path} skipped: {why}", file=sys.stderr)
                continue
            title = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), "")
            body = {"id": path.stem, "title": title or path.stem, "text": text}
            response = client.post("/v1/documents", json=body)
            ok = response.status_code == 202
            failures += not ok
            status = "queued" if ok else f"error {response.status_code}: {response.text[:200]}"
            print(f"[{n}/{len(files)}] {path} {status}", file=sys.stderr)
    return 1 if failures else 0
