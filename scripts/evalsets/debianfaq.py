"""The Debian GNU/Linux FAQ as plain text (Debian's `debian-faq`, DocBook rendered to text).

The package ships only the FAQ (the same book as HTML, text and PDF), so the distractors
are the FAQ's own other sections: this set tests telling ~170 answers apart more than
finding one among a project's whole documentation. Chapters are level 1, entries 2 and
3 (`3.1.7. Why is it that testing could be broken for months?`).
"""

from __future__ import annotations

import gzip

from scripts.evalsets.debarchive import DebPackage
from scripts.evalsets.model import EvalSet, faq_docs, finalize
from scripts.evalsets.spec import Files, SetSpec
from scripts.evalsets.textsections import text_sections

PKG = DebPackage(
    "debian-faq",
    "11.1",
    "427426e0cfa6888622fc1d72631071cb4b5a1f86ccde722e7820bcef284de5d0",
    "pool/main/d/debian-faq/debian-faq_11.1_all.deb",
)
TEXT = "usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"
OUT_OF_CONTEXT = frozenset({"What is this FAQ?"})


def _wanted(pkg: str, path: str) -> bool:
    return path == TEXT


def build(files: Files) -> EvalSet:
    """The Debian FAQ set from the package's files."""
    text = gzip.decompress(files[PKG.name][TEXT]).decode("utf-8")
    sections = text_sections(text, "debian-faq.en.txt")
    docs, questions = faq_docs(sections, levels=(2, 3))
    return finalize("debian-faq", docs, questions, OUT_OF_CONTEXT)


SPEC = SetSpec(
    name="debian-faq",
    project="Debian GNU/Linux (operating system distribution)",
    doc_format="plain text rendered from DocBook XML",
    licence="verbatim and modified copies permitted with the notice (Software in the Public"
    " Interest)",
    packages=(PKG,),
    wanted=_wanted,
    build=build,
    derivation=(
        f"FAQ and distractors: `/{TEXT}` (the package holds nothing else in English), cut at"
        " its unindented headings (`Chapter N.`, `N.N.`, `N.N.N.`; a wrapped heading"
        " continues to the blank line); entries at levels 2 and 3. Dropped as"
        ' out of context: "What is this FAQ?".'
    ),
)
