"""Sections of a generated HTML page: (level, heading, anchor, text) in document order.

Every HTML source here (Asciidoctor, Yodl, Texinfo, Sphinx) is machine-generated and
well-formed, so the standard library's `html.parser` is enough: no third-party parser
whose upgrade could change a byte of the built sets. Navigation, tables of contents and
headers are dropped by tag, id or class (each source names its own); permalink markers
(`¶`, `#`) inside headings are dropped the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser

from scripts.evalsets.model import Section

HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# a block element ends the current paragraph (its text goes on a line of its own)
_BLOCKS = frozenset(
    {
        *("p", "div", "pre", "ul", "ol", "li", "dl", "dt", "dd", "table", "tr", "blockquote"),
        *("section", "article", "aside", "header", "footer", "figure", "figcaption", "hr"),
        *("br", "h1", "h2", "h3", "h4", "h5", "h6", "caption", "tbody", "thead"),
    }
)
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param"}
    | {"source", "track", "wbr"}
)
_ALWAYS_SKIP = frozenset({"script", "style", "head", "noscript", "template", "svg"})
_SPACES = re.compile(r"[ \t\r\f\v\n]+")


@dataclass(frozen=True)
class Skip:
    """What to leave out: any element with one of these tags, ids or classes."""

    tags: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, tags: Iterable[str] = (), ids: Iterable[str] = (), classes: Iterable[str] = ()
    ) -> Skip:
        return cls(frozenset(tags), frozenset(ids), frozenset(classes))

    def matches(self, tag: str, attrs: dict[str, str]) -> bool:
        if tag in _ALWAYS_SKIP or tag in self.tags:
            return True
        if attrs.get("id", "") in self.ids:
            return True
        return bool(self.classes.intersection(attrs.get("class", "").split()))


@dataclass
class HtmlSection:
    """One heading and the text up to the next heading of any level."""

    level: int  # 1-6; 0 for text before the first heading
    heading: str
    anchor: str  # the heading's id, or the id of the element that opened just before it
    text: str = ""


@dataclass
class _Builder:
    blocks: list[str] = field(default_factory=list)
    line: list[str] = field(default_factory=list)
    prefix: str = ""  # a list item's "- ", put before the item's first text

    def add(self, text: str) -> None:
        self.line.append(text)

    def flush(self, pre: bool = False) -> None:
        raw = "".join(self.line)
        self.line.clear()
        text = raw.strip("\n") if pre else _SPACES.sub(" ", raw).strip()
        if text:
            self.blocks.append(self.prefix + text)
            self.prefix = ""

    def text(self) -> str:
        self.flush()
        return "\n\n".join(self.blocks)


class _Parser(HTMLParser):
    def __init__(self, skip: Skip) -> None:
        super().__init__(convert_charrefs=True)
        self.skip = skip
        self.sections: list[HtmlSection] = [HtmlSection(0, "", "")]
        self.body = _Builder()
        self.heading: _Builder | None = None
        self.heading_level = 0
        self.heading_anchor = ""
        self.skipping: list[str] = []  # the open elements being skipped (innermost last)
        self.pre = 0
        self.last_id = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if self.skipping:
            if tag not in _VOID:
                self.skipping.append(tag)
            return
        if self.skip.matches(tag, a):
            if tag not in _VOID:
                self.skipping.append(tag)
            return
        if a.get("id") or (tag == "a" and a.get("name")):
            self.last_id = a.get("id") or a.get("name", "")
        if tag in HEADINGS and self.heading is None:
            self._end_section()
            self.heading = _Builder()
            self.heading_level = HEADINGS[tag]
            self.heading_anchor = a.get("id") or self.last_id
            return
        if tag in _BLOCKS:
            self._current().flush(pre=self.pre > 0)
        if tag == "pre":
            self.pre += 1
        elif tag == "li":
            self._current().prefix = "- "
        elif tag in ("td", "th"):
            self._current().add(" ")

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            # pop up to the matching open tag: tolerates elements closed implicitly
            if tag in self.skipping:
                while self.skipping.pop() != tag:
                    pass
            return
        if tag in HEADINGS and self.heading is not None and HEADINGS[tag] == self.heading_level:
            heading = _SPACES.sub(" ", "".join(self.heading.line)).strip()
            self.sections.append(HtmlSection(self.heading_level, heading, self.heading_anchor))
            self.heading = None
            self.last_id = ""
            return
        if tag in _BLOCKS:
            self._current().flush(pre=self.pre > 0)
        if tag == "pre" and self.pre:
            self.pre -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self._current().add(data)

    def _current(self) -> _Builder:
        return self.heading if self.heading is not None else self.body

    def _end_section(self) -> None:
        self.sections[-1].text = self.body.text()
        self.body = _Builder()

    def result(self) -> list[HtmlSection]:
        self._end_section()
        return self.sections


def html_sections(html: str, skip: Skip = Skip()) -> list[HtmlSection]:
    """The page's sections in order; the first (level 0) holds any text before a heading."""
    parser = _Parser(skip)
    parser.feed(html)
    parser.close()
    return parser.result()


def page_sections(html: str, path: str, skip: Skip = Skip()) -> list[Section]:
    """The page's headed sections as `Section`s; a missing or repeated anchor gets the
    section's position (`s7`) or a count (`intro~2`) so ids stay unique and stable."""
    out: list[Section] = []
    seen: dict[str, int] = {}
    for n, s in enumerate(html_sections(html, skip)):
        if s.level == 0:
            continue
        anchor = s.anchor or f"s{n}"
        seen[anchor] = seen.get(anchor, 0) + 1
        if seen[anchor] > 1:
            anchor = f"{anchor}~{seen[anchor]}"
        out.append(Section(path, s.level, s.heading, anchor, s.text))
    return out
