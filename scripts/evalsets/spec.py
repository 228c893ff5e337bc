"""What a set is made of: its packages, its licence files and the function that parses them.

Each source module (`weechat.py`, `zsh.py`, ...) declares one `SetSpec`; `registry.py`
lists them. A spec names the exact package versions (with SHA-256), which files of them
it reads, and where its licence text comes from: the package's Debian `copyright` file,
plus the full text of a licence that file only names, from `/usr/share/common-licenses`
(Debian's `base-files`), checked against a pinned SHA-256 so the LICENSE file cannot
change unseen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.evalsets.debarchive import DebPackage
from scripts.evalsets.model import EvalSet

COMMON_LICENCES = Path("/usr/share/common-licenses")
# the texts base-files 12.4 (Debian 12) ships; unchanged for many releases
COMMON_LICENCE_SHA256 = {
    "GPL-2": "8177f97513213526df2cf6184d8ff986c675afb514d4e68a404010521b880643",
    "GPL-3": "3972dc9744f6499f0f9b2dbf76696f2ae7ad8af9b23dde66d6af86c9dfb36986",
}

Files = dict[str, dict[str, bytes]]  # package name -> {path in the package: content}


@dataclass(frozen=True)
class SetSpec:
    """One evaluation set: where it comes from and how it is derived."""

    name: str
    project: str  # "WeeChat (IRC client)"
    doc_format: str  # what the source files are: "Asciidoctor HTML", ...
    licence: str  # SPDX-style summary of the documentation's licence
    packages: tuple[DebPackage, ...]
    wanted: Callable[[str, str], bool]  # (package name, path) -> read this file?
    build: Callable[[Files], EvalSet]
    derivation: str  # Markdown: which files are FAQ, which distractors, special rules
    # the packages whose Debian copyright file goes into LICENSE (empty: every package)
    licence_packages: tuple[str, ...] = ()
    common_licences: tuple[str, ...] = ()
    licence_notice: Callable[[Files], str] | None = None  # a notice inside the documents

    @property
    def licence_files(self) -> tuple[tuple[str, str], ...]:
        """(package name, path) of each file copied into LICENSE."""
        names = self.licence_packages or tuple(p.name for p in self.packages)
        return tuple((name, copyright_file(name)) for name in names)

    def wants(self, package: str, path: str) -> bool:
        """Read this file of the package: the set's own choice, or a licence file."""
        return (package, path) in self.licence_files or self.wanted(package, path)


def copyright_file(package: str) -> str:
    """Where a Debian package keeps its copyright and licence statement."""
    return f"usr/share/doc/{package}/copyright"


def common_licence(name: str) -> str:
    """A licence's full text from base-files, refused if it is not the pinned text."""
    data = (COMMON_LICENCES / name).read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != COMMON_LICENCE_SHA256[name]:
        raise SystemExit(f"{COMMON_LICENCES / name}: SHA-256 {got}, not the pinned text")
    return data.decode("utf-8")


def licence_text(spec: SetSpec, files: Files) -> str:
    """The LICENSE file: each named file verbatim, then any full licence text."""
    parts = []
    for pkg, path in spec.licence_files:
        parts.append(f"==> {pkg}: /{path} <==\n\n{files[pkg][path].decode('utf-8').strip()}\n")
    if spec.licence_notice is not None:
        parts.append(
            f"==> notice in the documentation itself <==\n\n{spec.licence_notice(files)}\n"
        )
    for name in spec.common_licences:
        parts.append(
            f"==> /usr/share/common-licenses/{name} (base-files) <==\n\n"
            f"{common_licence(name).strip()}\n"
        )
    return "\n".join(parts)
