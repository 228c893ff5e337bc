"""An in-process cache of documents' visible versions, by tenant and corpus version."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping


class VersionCache:
    """Documents' visible versions by (tenant, corpus version), in this process.

    Every change of a visible version (a publish, a delete) moves the tenant's corpus
    version in the same atomic step, so what was read under a corpus version stays true
    for it: a question that read a newer corpus version looks up a new entry. Entries
    live `ttl_s` at most, which bounds what a Redis that lost its data (and counts the
    corpus version from 0 again) could serve stale; at most `size` entries are kept.
    """

    def __init__(self, *, size: int = 256, ttl_s: float = 30.0) -> None:
        self._size = size
        self._ttl_s = ttl_s
        self._entries: OrderedDict[tuple[str, str], tuple[float, dict[str, str]]] = OrderedDict()

    def get(self, tenant: str, corpus: str) -> dict[str, str]:
        """Versions known for the tenant's corpus version (document → version, '' gone)."""
        entry = self._entries.get((tenant, corpus))
        if entry is None or entry[0] < time.monotonic():
            return {}
        return entry[1]

    def put(self, tenant: str, corpus: str, versions: Mapping[str, str]) -> None:
        """Remember versions read after the tenant's corpus version was `corpus`."""
        key = (tenant, corpus)
        entry = self._entries.pop(key, None)
        if entry is None or entry[0] < time.monotonic():
            entry = (time.monotonic() + self._ttl_s, {})
        entry[1].update(versions)
        self._entries[key] = entry
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
