"""Split a document's text into overlapping chunks whose offsets always point back into it.

Headings start new chunks; inside a section cuts prefer blank lines, then sentence ends, line
ends and spaces. Fenced code blocks stay whole unless one alone is longer than a chunk.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document; `text == source[start:end]` and `section` is its heading."""

    index: int
    start: int
    end: int
    text: str
    section: str | None


class ChunkOffsetError(ValueError):
    """A chunk's offsets do not point at its text in the source."""


@dataclass(frozen=True, slots=True)
class _Heading:
    start: int  # offset of the first '#'
    line_end: int  # offset just after the heading line's text
    text: str


@dataclass(frozen=True, slots=True)
class _Fence:
    start: int  # offset of the opening fence's first backtick or tilde
    end: int  # offset just after the closing fence (or the text's last non-blank character)


_HEADING = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_FENCE_OPEN = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")

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


def chunk_text(text: str, *, max_chars: int = 1200, overlap_chars: int = 150) -> list[Chunk]:
    """Split `text` into chunks of at most `max_chars` characters, overlapping by about
    `overlap_chars` within a section (the overlap starts at a word).

    Chunks never start or end in whitespace, never cross a Markdown heading and never
    cut a fenced code block that fits in one chunk. Deterministic and pure.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, not {max_chars}")
    if not 0 <= overlap_chars < max_chars:
        raise ValueError(
            f"overlap_chars must be in [0, max_chars={max_chars}), not {overlap_chars}"
        )
    headings, fences = _scan(text)
    fence_starts = [f.start for f in fences]
    spans: list[tuple[int, int]] = []
    for span_start, span_end in _sections(text, headings):
        segments = _segments(span_start, span_end, fences, fence_starts, max_chars)
        for seg_start, seg_end, protected in segments:
            spans.extend(_pack(text, seg_start, seg_end, protected, max_chars, overlap_chars))
    heading_starts = [h.start for h in headings]
    return [
        Chunk(
            index=i,
            start=start,
            end=end,
            text=text[start:end],
            section=_section_of(text, start, end, headings, heading_starts),
        )
        for i, (start, end) in enumerate(spans)
    ]


def validate_chunks(text: str, chunks: Sequence[Chunk]) -> None:
    """Check that every chunk's text is `text[start:end]`, in order, with no text left out.

    Raises `ChunkOffsetError` naming the first chunk that breaks a rule: its index is not
    its position, its offsets are out of range, its text differs from the source, it is
    blank, it does not move forward past the previous chunk, or it skips non-blank text.
    """
    previous: Chunk | None = None
    for position, chunk in enumerate(chunks):
        where = f"chunk {chunk.index} at position {position} [{chunk.start}:{chunk.end}]"
        if chunk.index != position:
            raise ChunkOffsetError(f"{where}: index should be {position}")
        if not 0 <= chunk.start < chunk.end <= len(text):
            raise ChunkOffsetError(f"{where}: out of range for a text of {len(text)} characters")
        if text[chunk.start : chunk.end] != chunk.text:
            raise ChunkOffsetError(f"{where}: text differs from source[start:end]")
        if not chunk.text.strip():
            raise ChunkOffsetError(f"{where}: text is blank")
        gap_start = 0 if previous is None else previous.end
        if previous is not None and (chunk.start <= previous.start or chunk.end <= previous.end):
            raise ChunkOffsetError(f"{where}: does not move forward past chunk {previous.index}")
        if text[gap_start : chunk.start].strip():
            raise ChunkOffsetError(f"{where}: text before it is in no chunk")
        previous = chunk
    if text[0 if previous is None else previous.end :].strip():
        name = "no chunk" if previous is None else f"chunk {previous.index}"
        raise ChunkOffsetError(f"{name}: text after it is in no chunk")


def _scan(text: str) -> tuple[list[_Heading], list[_Fence]]:
    """Find ATX headings and fenced code blocks (headings inside fences don't count)."""
    headings: list[_Heading] = []
    fences: list[_Fence] = []
    opening: tuple[int, str, int] | None = None  # start, fence character, fence length
    line_start = 0
    while True:
        newline = text.find("\n", line_start)
        line = text[line_start : len(text) if newline == -1 else newline]
        line = line.removesuffix("\r")
        if opening is None:
            fence = _FENCE_OPEN.fullmatch(line)
            if fence and not (fence[2][0] == "`" and "`" in fence[3]):
                opening = (line_start + len(fence[1]), fence[2][0], len(fence[2]))
            elif heading := _HEADING.match(line):
                title = _CLOSING_HASHES.sub("", line[heading.end(1) :].strip()).strip()
                headings.append(
                    _Heading(line_start + heading.start(1), line_start + len(line), title)
                )
        else:
            fence = _FENCE_CLOSE.fullmatch(line)
            if fence and fence[1][0] == opening[1] and len(fence[1]) >= opening[2]:
                fences.append(_Fence(opening[0], line_start + len(line.rstrip())))
                opening = None
        if newline == -1:
            break
        line_start = newline + 1
    if opening is not None:  # an unclosed fence runs to the end of the text
        fences.append(_Fence(opening[0], _rstrip(text, opening[0], len(text))))
    return headings, fences


def _sections(text: str, headings: Sequence[_Heading]) -> list[tuple[int, int]]:
    """Spans from one heading to the next; a heading with no body joins the next section."""
    bounds = [0, *(h.start for h in headings), len(text)]
    spans: list[tuple[int, int]] = []
    carried: int | None = None
    for i in range(len(bounds) - 1):
        start = bounds[i] if carried is None else carried
        end = bounds[i + 1]
        body = headings[i - 1].line_end if i > 0 else bounds[i]
        if i > 0 and i < len(headings) and not text[body:end].strip():
            carried = start
            continue
        carried = None
        spans.append((start, end))
    return spans


def _segments(
    start: int, end: int, fences: Sequence[_Fence], fence_starts: Sequence[int], max_chars: int
) -> Iterator[tuple[int, int, list[_Fence]]]:
    """Split a section around code blocks too long for one chunk; others stay protected."""
    protected: list[_Fence] = []
    first = bisect.bisect_left(fence_starts, start)
    for fence in fences[first:]:
        if fence.start >= end:
            break
        if fence.end - fence.start <= max_chars:
            protected.append(fence)
            continue
        yield start, fence.start, protected
        yield fence.start, fence.end, []
        start, protected = fence.end, []
    yield start, end, protected


class _Protected:
    """Code blocks that must not be cut, with lookups by offset."""

    def __init__(self, fences: list[_Fence]) -> None:
        self._fences = fences
        self._starts = [f.start for f in fences]

    def containing(self, offset: int) -> _Fence | None:
        """The block with `offset` strictly inside it (cutting there would split it)."""
        k = bisect.bisect_right(self._starts, offset) - 1
        if k >= 0 and self._fences[k].start < offset < self._fences[k].end:
            return self._fences[k]
        return None

    def starting_at(self, offset: int) -> _Fence | None:
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


def _pack(
    text: str, lo: int, hi: int, fences: list[_Fence], max_chars: int, overlap_chars: int
) -> Iterator[tuple[int, int]]:
    """Greedy chunks `(start, end)` over `text[lo:hi]`, trimmed of surrounding whitespace."""
    protected = _Protected(fences)
    pos = _skip_space(text, lo, hi)
    hi = _rstrip(text, pos, hi)
    floor = pos  # every cut must lie past this: the first character not yet in a chunk
    while pos < hi:
        if hi - pos <= max_chars:
            yield pos, hi
            return
        cut = _best_cut(text, pos, floor, pos + max_chars, protected)
        end = _rstrip(text, pos, cut)
        yield pos, end
        floor = _skip_space(text, cut, hi)
        pos = _overlap_start(text, pos, end, floor, overlap_chars, max_chars, protected)


def _best_cut(text: str, pos: int, floor: int, limit: int, protected: _Protected) -> int:
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


def _hard_cut(text: str, floor: int, limit: int, protected: _Protected) -> int:
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


def _overlap_start(
    text: str,
    start: int,
    end: int,
    floor: int,
    overlap_chars: int,
    max_chars: int,
    protected: _Protected,
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


def _section_of(
    text: str, start: int, end: int, headings: Sequence[_Heading], starts: Sequence[int]
) -> str | None:
    """The heading over the chunk's first non-heading line (the last one above it)."""
    k = bisect.bisect_left(starts, start)
    section = headings[k - 1].text if k > 0 else None
    at = start
    while k < len(headings) and headings[k].start == at and at < end:
        section = headings[k].text
        at = _skip_space(text, headings[k].line_end, end)
        k += 1
    return section


def _skip_space(text: str, i: int, hi: int) -> int:
    while i < hi and text[i].isspace():
        i += 1
    return i


def _rstrip(text: str, lo: int, i: int) -> int:
    while i > lo and text[i - 1].isspace():
        i -= 1
    return i
