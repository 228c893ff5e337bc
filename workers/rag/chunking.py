"""Split a document's text into overlapping chunks whose offsets always point back into it.

Headings start new chunks; inside a section cuts prefer blank lines, then sentence ends, line
ends and spaces. Fenced code blocks stay whole unless one alone is longer than a chunk.
The Markdown structure is read by `workers.rag.markdown`, cuts are chosen by `workers.rag.cuts`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from workers.rag.cuts import Protected, best_cut, overlap_start
from workers.rag.markdown import Fence, rstrip, scan, section_of, sections, skip_space


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
    headings, fences = scan(text)
    fence_starts = [f.start for f in fences]
    spans: list[tuple[int, int]] = []
    for span_start, span_end in sections(text, headings):
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
            section=section_of(text, start, end, headings, heading_starts),
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


def _segments(
    start: int, end: int, fences: Sequence[Fence], fence_starts: Sequence[int], max_chars: int
) -> Iterator[tuple[int, int, list[Fence]]]:
    """Split a section around code blocks too long for one chunk; others stay protected."""
    protected: list[Fence] = []
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


def _pack(
    text: str, lo: int, hi: int, fences: list[Fence], max_chars: int, overlap_chars: int
) -> Iterator[tuple[int, int]]:
    """Greedy chunks `(start, end)` over `text[lo:hi]`, trimmed of surrounding whitespace."""
    protected = Protected(fences)
    pos = skip_space(text, lo, hi)
    hi = rstrip(text, pos, hi)
    floor = pos  # every cut must lie past this: the first character not yet in a chunk
    while pos < hi:
        if hi - pos <= max_chars:
            yield pos, hi
            return
        cut = best_cut(text, pos, floor, pos + max_chars, protected)
        end = rstrip(text, pos, cut)
        yield pos, end
        floor = skip_space(text, cut, hi)
        pos = overlap_start(text, pos, end, floor, overlap_chars, max_chars, protected)
