"""`ragq ingest`: load files and folders of documents through the API, as a user would.

Text and Markdown files go in bulk requests (`POST /v1/documents/bulk`, up to
`--batch-size` documents per request, each one request for the rate limit); PDF and HTML
files are uploaded one by one, since the API extracts their text. With `--wait` it waits
for indexing (`POST /v1/documents/status`, many documents per long poll). The client
(`shared.client`) waits out every 429/503 `Retry-After`. A second run skips what is
unchanged: text by its content hash (the server compares), uploads by the hash of their
bytes (kept in the document's `source_sha256` metadata). Unreadable files are skipped with a
line each; the summary line says what happened. Exit 0 when everything was loaded (and,
with `--wait`, indexed), 1 when something was not, 130 on Ctrl-C (what was sent goes on
being indexed; running the command again loads the rest).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scripts.clicommon import DEFAULT_URL, api_headers
from scripts.ingestfiles import Found, UploadFile, find_documents
from scripts.ingestprogress import ProgressBar
from shared.client import Client, IngestProgress, RagqError

SOURCE_HASH = "source_sha256"  # metadata key of an uploaded file's bytes' hash
UNCHANGED = frozenset({"indexed", "queued", "indexing"})


def add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `ragq ingest`."""
    parser.add_argument("paths", nargs="+", help="files, or folders to read recursively")
    parser.add_argument("--url", default=DEFAULT_URL, help="the ragq API (default: %(default)s)")
    parser.add_argument("--key", help="API key (default: $RAGQ_API_KEY)")
    parser.add_argument(
        "--wait", action="store_true", help="wait until every document is indexed or failed"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="with --wait, give up waiting after this many seconds (default: no limit)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=500,
        help="documents per bulk request, 1 to 500 (default: %(default)s)",
    )
    parser.add_argument(
        "--force", action="store_true", help="send unchanged files again (re-index them)"
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (default: shown when stderr is a terminal)",
    )
    parser.add_argument(
        "--summary-json", type=Path, help="also write the summary as JSON to this file"
    )


@dataclass
class Tally:
    """What one run did, for the summary line and --summary-json."""

    files: int = 0
    queued: int = 0
    unchanged: int = 0
    indexed: int = 0
    failed: int = 0
    skipped: int = 0
    ignored: int = 0
    requests: int = 0
    rate_limited: int = 0
    waited_on_limits_s: float = 0.0
    elapsed_s: float = 0.0
    problems: list[dict[str, str]] = field(default_factory=list)
    sent: int = 0  # documents the API has received (what an interruption leaves loading)

    def line(self, waited: bool) -> str:
        """The one summary line."""
        done = f"{self.indexed} indexed" if waited else f"{self.queued} queued"
        if waited and self.queued:
            done += f", {self.queued} still indexing"
        text = (
            f"ragq ingest: {self.files} files: {done}, {self.unchanged} unchanged, "
            f"{self.failed} failed, {self.skipped} skipped"
        )
        if self.ignored:
            text += f" ({self.ignored} other files in the folders ignored)"
        text += (
            f"; {self.requests} requests, {self.rate_limited} rate-limited, "
            f"{self.waited_on_limits_s:.1f} s waiting on limits; {self.elapsed_s:.1f} s"
        )
        return text if waited else text + " (pass --wait to wait for indexing)"


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _load_texts(client: Client, found: Found, args: argparse.Namespace, tally: Tally) -> None:
    bar = ProgressBar(len(found.texts), "indexing" if args.wait else "sending", args.no_progress)

    def progress(p: IngestProgress) -> None:
        tally.sent = p.sent
        bar.update(p.finished if args.wait else p.sent)

    with bar:
        summary = client.ingest(
            [t.document() for t in found.texts],
            batch_size=args.batch_size,
            wait=args.wait,
            skip_unchanged=not args.force,
            progress=progress,
            timeout_s=args.timeout,
        )
    for outcome, text in zip(summary.outcomes, found.texts, strict=True):
        setattr(tally, outcome.status, getattr(tally, outcome.status) + 1)
        if outcome.status == "failed":
            tally.problems.append(
                {"path": str(text.path), "id": text.id, "error": outcome.error or ""}
            )


def _load_uploads(client: Client, found: Found, args: argparse.Namespace, tally: Tally) -> None:
    if not found.uploads:
        return
    held = {s.id: s for s in client.document_states([u.id for u in found.uploads])}
    sent: list[UploadFile] = []
    for upload in found.uploads:
        state = held.get(upload.id)
        metadata = state.metadata if state is not None and state.metadata else {}
        same = state is not None and state.status in UNCHANGED
        if same and not args.force and metadata.get(SOURCE_HASH) == upload.sha256:
            tally.unchanged += 1
            continue
        try:
            client.upload_document(
                upload.path.name, upload.data, id=upload.id, metadata={SOURCE_HASH: upload.sha256}
            )
        except RagqError as exc:
            tally.failed += 1
            tally.problems.append({"path": str(upload.path), "id": upload.id, "error": str(exc)})
            _note(f"failed: {upload.path}: {exc}")
            continue
        sent.append(upload)
        tally.sent += 1
    if not args.wait:
        tally.queued += len(sent)
        return
    states = {s.id: s for s in client.wait_for_documents([u.id for u in sent], args.timeout)}
    for upload in sent:
        state = states.get(upload.id)
        status = state.status if state is not None else "missing"
        if status == "indexed":
            tally.indexed += 1
        elif status in ("queued", "indexing"):
            tally.queued += 1
        else:
            error = (state.error if state is not None else None) or status
            tally.failed += 1
            tally.problems.append({"path": str(upload.path), "id": upload.id, "error": error})


def run_ingest(args: argparse.Namespace) -> int:
    """`ragq ingest`: load files through the API; exit 1 when any was not loaded."""
    if not 1 <= args.batch_size <= 500:
        raise SystemExit("ragq ingest: --batch-size must be 1 to 500")
    started = time.monotonic()
    found = find_documents(args.paths)
    tally = Tally(files=found.total, skipped=len(found.skipped), ignored=found.ignored)
    for path, why in found.skipped:
        _note(f"skipped: {path}: {why}")
    headers = api_headers(args.key)
    key = headers["Authorization"].removeprefix("Bearer ")
    with Client(args.url, api_key=key) as client:
        try:
            if found.texts:
                _load_texts(client, found, args, tally)
            _load_uploads(client, found, args, tally)
        except KeyboardInterrupt:
            _note(
                f"ragq ingest: interrupted after sending {tally.sent} of {found.total} files; "
                "what was sent goes on being indexed. Run the same command again to load "
                "the rest (unchanged files are skipped)."
            )
            return 130
        finally:
            tally.requests = client.stats.requests
            tally.rate_limited = client.stats.rate_limited
            tally.waited_on_limits_s = client.stats.waited_on_limits_s
    tally.elapsed_s = time.monotonic() - started
    for problem in tally.problems:
        _note(f"failed: {problem['path']} ({problem['id']}): {problem['error']}")
    _note(tally.line(args.wait))
    if args.summary_json is not None:
        args.summary_json.write_text(json.dumps(asdict(tally), indent=2) + "\n")
    not_loaded = tally.failed + tally.skipped + (tally.queued if args.wait else 0)
    return 1 if not_loaded else 0
