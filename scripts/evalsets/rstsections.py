"""Sections of a reStructuredText file, with their nesting levels.

A title is a line underlined (or over- and underlined) by a run of one punctuation
character at least as long as it; its level is the order in which that adornment style
first appears in the file, as docutils assigns it. Indented lines are never titles (they
are inside blocks). The text is kept as reStructuredText source, less the lines that only
matter to Sphinx's build (labels, `include` and `highlight` directives); titles lose
their inline markup (``*not*`` reads "not").
"""

from __future__ import annotations

import re

from scripts.evalsets.model import Section

_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")  # ===, ---, ~~~, ###, ...
_BUILD_ONLY = re.compile(r"^\.\. (?:_[^:]*:\s*$|include::|highlight::)")
_SLUG = re.compile(r"[^0-9a-z]+")
# inline markup in a title: *emphasis*, **strong**, ``literal``, `interpreted`
_INLINE = re.compile(r"(\*{1,2}|`{1,2})(?=\S)(.+?)(?<=\S)\1")


def plain(title: str) -> str:
    """The title as a reader sees it: inline markup characters removed."""
    return _INLINE.sub(r"\2", title)


def slug(heading: str) -> str:
    """A docutils-like id: lowercase words joined by hyphens."""
    return _SLUG.sub("-", heading.casefold()).strip("-") or "section"


def _title_at(lines: list[str], i: int) -> tuple[str, tuple[str, bool], int] | None:
    """(title, style, lines used) when a title starts at line i."""
    line = lines[i]
    nxt = lines[i + 1] if i + 1 < len(lines) else ""
    over = _ADORNMENT.match(line)
    if over and i + 2 < len(lines):
        title, under = lines[i + 1], lines[i + 2]
        if (
            title.strip()
            and not _ADORNMENT.match(title)
            and under.rstrip() == line.rstrip()
            and len(line.rstrip()) >= len(title.strip())
        ):
            return title.strip(), (line[0], True), 3
        return None
    if (
        _ADORNMENT.match(nxt)
        and line.strip()
        and not line[0].isspace()
        and not _ADORNMENT.match(line)
        and len(nxt.rstrip()) >= len(line.rstrip())
        and (i == 0 or not lines[i - 1].strip())
    ):
        return line.strip(), (nxt[0], False), 2
    return None


def rst_sections(text: str, path: str) -> list[Section]:
    """The file's sections in order (text before the first title is left out)."""
    lines = text.splitlines()
    styles: list[tuple[str, bool]] = []
    heads: list[tuple[int, int, str, int]] = []  # start line, lines used, title, level
    i = 0
    while i < len(lines):
        found = _title_at(lines, i)
        if found is None:
            i += 1
            continue
        title, style, used = found
        if style not in styles:
            styles.append(style)
        heads.append((i, used, title, styles.index(style) + 1))
        i += used
    out: list[Section] = []
    anchors: dict[str, int] = {}
    for n, (start, used, title, level) in enumerate(heads):
        end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        body = [ln for ln in lines[start + used : end] if not _BUILD_ONLY.match(ln)]
        anchor = slug(title)
        anchors[anchor] = anchors.get(anchor, 0) + 1
        if anchors[anchor] > 1:
            anchor = f"{anchor}-{anchors[anchor]}"
        out.append(Section(path, level, plain(title), anchor, "\n".join(body).strip()))
    return out
