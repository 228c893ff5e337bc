"""The content hash of a document, computed the same way by the API and by clients.

A bulk load sends only the documents whose hash differs from the stored one; a client
that keeps the hashes of what it sent can skip the unchanged ones before sending.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping


def content_sha256(title: str, text: str, metadata: Mapping[str, object]) -> str:
    """Hex SHA-256 of the canonical JSON of `{"title", "text", "metadata"}`: sorted keys,
    compact separators, non-ASCII kept as is (`ensure_ascii=False`), encoded as UTF-8."""
    canonical = json.dumps(
        {"title": title, "text": text, "metadata": dict(metadata)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
