"""Debian packages pinned by version and SHA-256, fetched once, read without installing.

`fetch` runs `apt-get download NAME=VERSION` (the only network step, at set-up time) into
a cache folder and refuses a file whose SHA-256 is not the pinned one; `read` opens the
`.deb` in pure Python (an `ar` archive holding `data.tar.xz`) and returns the members
asked for, so building never depends on what is installed or on `dpkg`'s version.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_AR_MAGIC = b"!<arch>\n"


@dataclass(frozen=True)
class DebPackage:
    """One Debian binary package at one version (Debian 12 "bookworm")."""

    name: str
    version: str
    sha256: str
    pool_path: str  # where the archive keeps it, as `apt-cache show` says (Filename)

    @property
    def filename(self) -> str:
        """The name `apt-get download` gives the file (an epoch's colon as %3a)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_all.deb"


def default_cache() -> Path:
    """$RAGQ_EVALSETS_CACHE, else ~/.cache/ragq-evalsets."""
    env = os.environ.get("RAGQ_EVALSETS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ragq-evalsets"


def sha256_of(path: Path) -> str:
    """The file's SHA-256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(pkg: DebPackage, cache: Path) -> Path:
    """The package's archive in `cache`, downloaded if missing; checked against its hash."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / pkg.filename
    if not path.exists():
        cmd = ["apt-get", "download", f"{pkg.name}={pkg.version}"]
        done = subprocess.run(cmd, cwd=cache, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not path.exists():
            raise SystemExit(
                f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}\n"
                "(run `apt-get update` first; a version no longer in the archive cannot be"
                " had: put its .deb, same SHA-256, in the cache folder)"
            )
    got = sha256_of(path)
    if got != pkg.sha256:
        raise SystemExit(f"{path}: SHA-256 {got}, expected {pkg.sha256}")
    return path


def _ar_members(data: bytes) -> dict[str, bytes]:
    if not data.startswith(_AR_MAGIC):
        raise ValueError("not an ar archive (a .deb starts with !<arch>)")
    members: dict[str, bytes] = {}
    pos = len(_AR_MAGIC)
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        pos += 60
        members[name] = data[pos : pos + size]
        pos += size + (size % 2)  # members are 2-byte aligned
    return members


def read(path: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The regular files of the package's data whose path (`usr/share/...`, no leading
    `./`) `wanted` accepts; symbolic links inside the package are followed."""
    members = _ar_members(path.read_bytes())
    name = next((n for n in members if n.startswith("data.tar")), None)
    if name is None:
        raise ValueError(f"{path}: no data.tar member")
    raw = members[name]
    if name == "data.tar.xz":
        raw = lzma.decompress(raw)
    elif name == "data.tar.gz":
        raw = gzip.decompress(raw)
    elif name != "data.tar":
        raise ValueError(f"{path}: {name} is not a compression this reader knows")
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for info in tar.getmembers():
            rel = info.name.removeprefix("./")
            if not (info.isfile() or info.issym()) or not wanted(rel):
                continue
            try:
                target = tar.extractfile(info)
            except KeyError:  # a link to something outside the package
                continue
            if target is not None:
                out[rel] = target.read()
    return out
