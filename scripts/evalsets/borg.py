"""BorgBackup's FAQ over its documentation sources (Debian's `borgbackup-doc`, reST).

Sphinx ships the reStructuredText sources beside the HTML (`_sources/*.rst.txt`); the
FAQ is `faq.rst.txt` (title `=`, topics `#`, entries `-`), and the distractors are every
section of every other source file, the change log included. The text stays
reStructuredText, less labels and `include`/`highlight` directives.
"""

from __future__ import annotations

from scripts.evalsets.debarchive import DebPackage
from scripts.evalsets.model import EvalSet, faq_docs, finalize, section_docs
from scripts.evalsets.rstsections import rst_sections
from scripts.evalsets.spec import Files, SetSpec

PKG = DebPackage(
    "borgbackup-doc",
    "1.2.4-1",
    "f7c621fde76d460f071e8c0803d62198101f1c86ef3430db158f2e789570dbda",
    "pool/main/b/borgbackup/borgbackup-doc_1.2.4-1_all.deb",
)
SOURCES = "usr/share/doc/borgbackup/html/_sources/"
FAQ = "faq.rst"


def _wanted(pkg: str, path: str) -> bool:
    return path.startswith(SOURCES) and path.endswith(".rst.txt")


def build(files: Files) -> EvalSet:
    """The Borg set from the package's files."""
    sources = {
        path.removeprefix(SOURCES).removesuffix(".txt"): data.decode("utf-8")
        for path, data in sorted(files[PKG.name].items())
        if path.startswith(SOURCES)
    }
    docs, questions = faq_docs(rst_sections(sources.pop(FAQ), FAQ), levels=(3,))
    for path, text in sources.items():
        docs += section_docs(rst_sections(text, path))
    return finalize("borg-faq", docs, questions)


SPEC = SetSpec(
    name="borg-faq",
    project="BorgBackup (deduplicating backup program)",
    doc_format="reStructuredText (Sphinx sources)",
    licence="BSD-3-Clause",
    packages=(PKG,),
    wanted=_wanted,
    build=build,
    derivation=(
        f"FAQ: `/{SOURCES}{FAQ}.txt` (entries: level 3, the `-` underlines). Distractors:"
        f" every section of every other `/{SOURCES}**/*.rst.txt`, the change log included."
        " Text kept as reStructuredText, less `.. _label:`, `.. include::` and"
        " `.. highlight::` lines."
    ),
)
