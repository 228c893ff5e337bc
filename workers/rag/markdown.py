"""The Markdown structure chunking follows: ATX headings (what section a chunk is in, where
sections start) and fenced code blocks (which chunks keep whole), found in one pass, plus
the whitespace steps every offset computation shares.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Heading:
    """An ATX heading: where it starts, where its line ends, its text."""

    start: int  # offset of the first '#'
    line_end: int  # offset just after the heading line's text
    text: str


@dataclass(frozen=True, slots=True)
class Fence:
    """A fenced code block's extent."""

    start: int  # offset of the opening fence's first backtick or tilde
    end: int  # offset just after the closing fence (or the text's last non-blank character)


_HEADING = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_FENCE_OPEN = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")


def scan(text: str) -> tuple[list[Heading], list[Fence]]:
    """Find ATX headings and fenced code blocks (headings inside fences don't count)."""
    headings: list[Heading] = []
    fences: list[Fence] = []
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
                    Heading(line_start + heading.start(1), line_start + len(line), title)
                )
        else:
            fence = _FENCE_CLOSE.fullmatch(line)
            if fence and fence[1][0] == opening[1] and len(fence[1]) >= opening[2]:
                fences.append(Fence(opening[0], line_start + len(line.rstrip())))
                opening = None
        if newline == -1:
            break
        line_start = newline + 1
    if opening is not None:  # an unclosed fence runs to the end of the text
        fences.append(Fence(opening[0], rstrip(text, opening[0], len(text))))
    return headings, fences


def sections(text: str, headings: Sequence[Heading]) -> list[tuple[int, int]]:
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


def section_of(
    text: str, start: int, end: int, headings: Sequence[Heading], starts: Sequence[int]
) -> str | None:
    """The heading over the chunk's first non-heading line (the last one above it)."""
    k = bisect.bisect_left(starts, start)
    section = headings[k - 1].text if k > 0 else None
    at = start
    while k < len(headings) and headings[k].start == at and at < end:
        section = headings[k].text
        at = skip_space(text, headings[k].line_end, end)
        k += 1
    return section


def skip_space(text: str, i: int, hi: int) -> int:
    """The first offset from `i` (up to `hi`) that is not whitespace."""
    while i < hi and text[i].isspace():
        i += 1
    return i


def rstrip(text: str, lo: int, i: int) -> int:
    """`i` moved back (down to `lo`) past trailing whitespace: the end of `text[lo:i].rstrip()`."""
    while i > lo and text[i - 1].isspace():
        i -= 1
    return i
