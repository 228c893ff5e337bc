"""Sections of a plain-text book rendered from DocBook (the Debian FAQ's `.txt`).

Headings start at the left margin: `Chapter N. Title` or a dotted section number
(`3.1.7. Why ...`), and a long heading wraps onto the following unindented lines up to a
blank line; body text is indented. A heading's level is its count of numbers (a chapter
is 1). Text before the first chapter (title page, table of contents) is left out.
"""

from __future__ import annotations

import re
import textwrap

from scripts.evalsets.model import Section

# DocBook's text puts no-break spaces after "Chapter" and after the number: \s matches both
_CHAPTER = re.compile(r"^Chapter\s(\d+)\.\s(\S.*)$")
_NUMBERED = re.compile(r"^(\d+(?:\.\d+)+)\.\s(\S.*)$")
_RULE = re.compile(r"^-{10,}\s*$")


def text_sections(text: str, path: str) -> list[Section]:
    """The book's sections in order; the anchor is the section number."""
    lines = text.splitlines()
    out: list[Section] = []
    number = heading = ""
    body: list[str] = []
    i = 0

    def close() -> None:
        if number:
            level = number.count(".") + 1
            # no-break spaces indent some lines; the rules (----) end each chapter
            lines = [ln.replace("\u00a0", " ") for ln in body if not _RULE.match(ln)]
            text = textwrap.dedent("\n".join(lines)).strip()
            out.append(Section(path, level, f"{number}. {heading}", number, text))

    while i < len(lines):
        line = lines[i]
        m = _CHAPTER.match(line) or _NUMBERED.match(line)
        if m:
            close()
            number, heading, body = m.group(1), m.group(2).strip(), []
            i += 1
            while i < len(lines) and lines[i].strip() and not lines[i][0].isspace():
                # the renderer wraps after a slash too: "GNU/" + "Linux"
                heading += ("" if heading.endswith("/") else " ") + lines[i].strip()
                i += 1
            continue
        if number:
            body.append(line)
        i += 1
    close()
    return out
