"""Read the built sets from data/evalsets/: what a benchmark iterates over.

    for name in names():
        docs, questions = load(name)

`names()` lists every set folder (sorted); the held-out set, never to be used for tuning,
is named by data/evalsets/HELD_OUT, and `names(include_held_out=False)` leaves it out.
"""

from __future__ import annotations

import json
from pathlib import Path

from scripts.evalsets.model import Doc, Question

ROOT = Path(__file__).resolve().parents[2] / "data" / "evalsets"


def held_out(root: Path = ROOT) -> str:
    """The held-out set's name (data/evalsets/HELD_OUT, one line)."""
    return (root / "HELD_OUT").read_text(encoding="utf-8").strip()


def names(root: Path = ROOT, *, include_held_out: bool = True) -> list[str]:
    """Every built set, sorted by name."""
    found = sorted(p.parent.name for p in root.glob("*/docs.jsonl"))
    if not include_held_out and (root / "HELD_OUT").exists():
        found = [n for n in found if n != held_out(root)]
    return found


def load(name: str, root: Path = ROOT) -> tuple[list[Doc], list[Question]]:
    """The set's documents and questions, in file order."""
    folder = root / name
    if not (folder / "docs.jsonl").exists():
        raise KeyError(f"no evaluation set {name!r} in {root} (have: {', '.join(names(root))})")
    docs = [
        Doc(r["id"], r["title"], r["text"])
        for r in map(json.loads, (folder / "docs.jsonl").read_text(encoding="utf-8").splitlines())
    ]
    questions = [
        Question(r["question"], tuple(r["expected_doc_ids"]))
        for r in map(
            json.loads, (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        )
    ]
    return docs, questions
