"""The Z-Shell FAQ over the zsh manual (Debian's `zsh-doc`: Yodl and Texinfo HTML).

The FAQ's chapters (`FAQ01.html` ... `FAQ06.html`, made by Yodl) are `<h1>`, its entries
`<h2>` ("3.1: Why does ..."). The distractors are every section of the zsh manual's real
pages (Texinfo 6.8 HTML): the redirect stubs, the indexes, the tables of contents and the
FAQ's own contents page are left out, and so are Texinfo's navigation tables and menus.
The licences are in `zsh-common` (the manual's) and at the end of the FAQ (its own).
"""

from __future__ import annotations

import re

from scripts.evalsets.debarchive import DebPackage
from scripts.evalsets.htmlsections import Skip, page_sections
from scripts.evalsets.model import EvalSet, Section, faq_docs, finalize, section_docs
from scripts.evalsets.spec import Files, SetSpec

DOC = DebPackage(
    "zsh-doc",
    "5.9-4",
    "79bd75df4bf03d1021e993fd773f82b8a4c8d76649e420cd32eca940cf418ff4",
    "pool/main/z/zsh/zsh-doc_5.9-4_all.deb",
)
COMMON = DebPackage(  # only for /usr/share/doc/zsh-common/copyright
    "zsh-common",
    "5.9-4",
    "4f263aa88910f750965b1a83dcbca1355b2cf509acffe96cc2d856333909a7b5",
    "pool/main/z/zsh/zsh-common_5.9-4_all.deb",
)
HTML = "usr/share/doc/zsh-common/html/"
FAQ_CHAPTERS = tuple(f"FAQ0{n}.html" for n in range(1, 7))
NOT_MANUAL = re.compile(r"(Index|^FAQ|^zsh_|^index)[^/]*\.html$|^The-Z-Shell-Manual\.html$")
# chapter 1's questions say "it" for zsh: without the FAQ around them they name nothing
OUT_OF_CONTEXT = frozenset(
    {"What is it?", "What is it good at?", "On what machines will it run?", "Where do I get it?"}
)
REDIRECT = 'http-equiv="Refresh"'
MANUAL_SKIP = Skip.of(classes=("header", "menu", "copiable-anchor", "contents"))
# the Yodl pages' navigation lists, before and after each chapter
_FAQ_NAV = re.compile(r"^- (?:Table of Contents|Previous Chapter|Next Chapter)$", re.MULTILINE)


def _wanted(pkg: str, path: str) -> bool:
    if pkg == COMMON.name:
        return False  # only its copyright file (licence_packages)
    return path.startswith(HTML) and path.endswith(".html")


def _faq(files: Files) -> list[Section]:
    out = []
    for name in FAQ_CHAPTERS:
        html = files[DOC.name][HTML + name].decode("utf-8")
        for s in page_sections(html, name):
            text = _FAQ_NAV.sub("", s.text).strip()
            out.append(Section(s.path, s.level, s.heading, s.anchor, text))
    return out


def manual_pages(files: Files) -> list[str]:
    """The manual's pages that hold text (not stubs, indexes or contents), sorted."""
    pages = []
    for path, data in sorted(files[DOC.name].items()):
        name = path.removeprefix(HTML)
        if "/" in name or NOT_MANUAL.search(name) or REDIRECT.encode() in data:
            continue
        pages.append(name)
    return pages


def faq_notice(files: Files) -> str:
    """The FAQ's own copyright and permission notice (its last section, in `FAQ06.html`)."""
    [notice] = [s for s in _faq(files) if s.heading == "Copyright Information:"]
    return f"(from /{HTML}{notice.path})\n\n{notice.heading}\n\n{notice.text}"


def build(files: Files) -> EvalSet:
    """The zsh set from the packages' files."""
    docs, questions = faq_docs(_faq(files), levels=(2,))
    for name in manual_pages(files):
        html = files[DOC.name][HTML + name].decode("utf-8")
        docs += section_docs(page_sections(html, name, MANUAL_SKIP))
    return finalize("zsh-faq", docs, questions, OUT_OF_CONTEXT)


SPEC = SetSpec(
    name="zsh-faq",
    project="Zsh (Unix shell)",
    doc_format="HTML: the FAQ made by Yodl, the manual by Texinfo 6.8",
    licence="the FAQ: permissive, notice kept (P. W. Stephenson); the manual: MIT-like (zsh)",
    packages=(DOC, COMMON),
    wanted=_wanted,
    licence_packages=(COMMON.name,),
    licence_notice=faq_notice,
    build=build,
    derivation=(
        "FAQ: `FAQ01.html`–`FAQ06.html` (chapters `<h1>`, entries `<h2>`), less the"
        " navigation lists. Distractors: every section of the manual's pages that hold"
        " text (not the `Refresh` stubs, the `*Index*` pages, `index.html`, `zsh_toc.html`,"
        " `zsh_abt.html`, `The-Z-Shell-Manual.html`), less Texinfo's `.header` navigation,"
        ' `.menu` and `.contents`. Dropped as out of context ("it" is zsh): '
        + ", ".join(f'"{q}"' for q in sorted(OUT_OF_CONTEXT))
        + "."
    ),
)
