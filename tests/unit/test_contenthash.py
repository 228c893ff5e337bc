"""The content hash clients compute locally: pinned to its canonical JSON, so a change of
form (key order, separators, escaping) cannot slip by and mark every document changed."""

from __future__ import annotations

import hashlib

from shared.contenthash import content_sha256


def test_hash_is_sha256_of_sorted_compact_utf8_json() -> None:
    """Keys sorted at every level, no spaces, non-ASCII as UTF-8 rather than `\\u` escapes."""
    canonical = '{"metadata":{"a":1,"b":"é"},"text":"Café: 08:00–17:00.","title":"Café"}'
    expected = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert content_sha256("Café", "Café: 08:00–17:00.", {"b": "é", "a": 1}) == expected


def test_any_change_of_title_text_or_metadata_changes_the_hash() -> None:
    """Each part counts: the same text under another title or metadata hashes apart."""
    hashes = {
        content_sha256("T", "x", {}),
        content_sha256("U", "x", {}),
        content_sha256("T", "y", {}),
        content_sha256("T", "x", {"k": True}),
        content_sha256("T", "x", {"k": 1}),
    }
    assert len(hashes) == 5
