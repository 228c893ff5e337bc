"""Where a chunk may end and where the next one starts: cut candidates from blank lines down
to any space, never inside a code block that fits in a chunk nor inside a grapheme, and the
word the overlap starts at.
"""

from __future__ import annotations

import bisect
import re
import unicodedata

from workers.rag.markdown import Fence

# Cut candidates, best first. A cut is where a chunk's text stops (trailing blanks are
# trimmed afterwards); `True` means the cut is the match's end rather than its start.
_CUT_LEVELS: tuple[tuple[re.Pattern[str], bool], ...] = (
    (re.compile(r"\n[^\S\n]*\n"), False),  # blank line; fence edges are added to this level
    (re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|[。！？]+[」』）]*"), True),  # sentence end
    (re.compile(r"\n"), False),  # line end
    (re.compile(r"\s"), False),  # any space
)
_LOOKAROUND = 64  # characters searched past the window so a match straddling its edge is seen
_WORD_START = re.compile(r"(?<=\s)\S")
_ZWJ = "\u200d"


class Protected:
    """Code blocks that must not be cut, with lookups by offset."""

    def __init__(self, fences: list[Fence]) -> None:
        self._fences = fences
        self._starts = [f.start for f in fences]

    def containing(self, offset: int) -> Fence | None:
        """The block with `offset` strictly inside it (cutting there would split it)."""
        k = bisect.bisect_right(self._starts, offset) - 1
        if k >= 0 and self._fences[k].start < offset < self._fences[k].end:
            return self._fences[k]
        return None

    def starting_at(self, offset: int) -> Fence | None:
        k = bisect.bisect_left(self._starts, offset)
        if k < len(self._fences) and self._fences[k].start == offset:
            return self._fences[k]
        return None

    def last_edge(self, lo: int, hi: int) -> int | None:
        """The last block start or end in `[lo, hi]`."""
        k = bisect.bisect_right(self._starts, hi) - 1
        if k < 0:
            return None
        fence = self._fences[k]
        if lo <= fence.end <= hi:
            return fence.end
        return fence.start if fence.start >= lo else None


def best_cut(text: str, pos: int, floor: int, limit: int, protected: Protected) -> int:
    """The best cut in `(floor, limit]`, preferring ones that fill at least half a chunk."""
    half = pos + (limit - pos) // 2
    for lo in dict.fromkeys((max(floor + 1, half), floor + 1)):
        for pattern, at_end in _CUT_LEVELS:
            best: int | None = None
            search_from = max(0, lo - _LOOKAROUND)
            for match in pattern.finditer(text, search_from, min(len(text), limit + _LOOKAROUND)):
                cut = match.end() if at_end else match.start()
                if cut > limit:
                    break
                if cut >= lo and protected.containing(cut) is None:
                    best = cut
            if pattern is _CUT_LEVELS[0][0]:
                edge = protected.last_edge(lo, limit)
                if edge is not None and (best is None or edge > best):
                    best = edge
            if best is not None:
                return best
    return _hard_cut(text, floor, limit, protected)


def _hard_cut(text: str, floor: int, limit: int, protected: Protected) -> int:
    """Cut at `limit`, but never inside a protected block or a grapheme we can recognise."""
    fence = protected.containing(limit)
    if fence is not None:
        return fence.start  # the block fits in a chunk, so it starts past `floor`
    cut = limit
    while cut > floor + 1 and _joined(text, cut):
        cut -= 1
    return limit if _joined(text, cut) else cut


def _joined(text: str, i: int) -> bool:
    """True when `text[i]` continues the character before it (accent, ZWJ, modifier)."""
    if not 0 < i < len(text):
        return False
    char = text[i]
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or char == _ZWJ
        or text[i - 1] == _ZWJ
        or "\ufe00" <= char <= "\ufe0f"  # variation selectors
        or "\U0001f3fb" <= char <= "\U0001f3ff"  # skin-tone modifiers
    )


def overlap_start(
    text: str,
    start: int,
    end: int,
    floor: int,
    overlap_chars: int,
    max_chars: int,
    protected: Protected,
) -> int:
    """Where the next chunk starts: a word about `overlap_chars` before `end`, else `floor`."""
    if overlap_chars == 0:
        return floor
    earliest = max(end - overlap_chars, start + 1, floor + 1 - max_chars)
    fence = protected.starting_at(floor)
    if fence is not None:  # leave room for the whole block in the next chunk
        earliest = max(earliest, fence.end - max_chars)
    while match := _WORD_START.search(text, earliest, end):
        inside = protected.containing(match.start())
        if inside is None:
            return match.start()
        earliest = inside.end
    return floor
