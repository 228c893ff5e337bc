"""The question file: a line that does not validate, or a duplicate id, stops the run
before it starts, naming the file and the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.evaluation import DataError, load_questions
from tests.unit.evaluation_fakes import question, write_questions


def test_a_bad_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    """A question line missing a field names the file, the line and the field."""
    good = question().model_dump_json()
    path = tmp_path / "eval.jsonl"
    path.write_text(f'{good}\n\n{{"id": "q2", "question": "x?", "kind": "exact"}}\n')
    with pytest.raises(DataError, match=r"eval\.jsonl:3: .*expected_doc_ids"):
        load_questions(path)


def test_invalid_json_and_unknown_kinds_are_refused(tmp_path: Path) -> None:
    """Broken JSON or a kind outside exact/paraphrase/multi stops the run before it starts."""
    path = tmp_path / "eval.jsonl"
    path.write_text("{not json\n")
    with pytest.raises(DataError, match=r":1: .*Invalid JSON"):
        load_questions(path)
    bad_kind = question().model_dump() | {"kind": "fuzzy"}
    path.write_text(json.dumps(bad_kind) + "\n")
    with pytest.raises(DataError, match=r":1: .*kind"):
        load_questions(path)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    """Two questions with one id are refused, naming both lines."""
    path = write_questions(tmp_path / "eval.jsonl", [question("q1"), question("q1")])
    with pytest.raises(DataError, match=r":2: duplicate id 'q1' \(first on line 1\)"):
        load_questions(path)
