"""The evaluation's question set: one JSON object per line of a JSONL file, validated.

Each question names the documents that answer it and the keywords a right answer holds,
and is of one kind: `exact` (worded like the source), `paraphrase` or `multi` (needs
several documents).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

Kind = Literal["exact", "paraphrase", "multi"]
KINDS: tuple[Kind, ...] = ("exact", "paraphrase", "multi")
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class DataError(Exception):
    """The question file cannot be used (unreadable, empty, or a line that does not validate)."""


class EvalQuestion(BaseModel):
    """One line of the question file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: NonEmpty
    question: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)
    ]
    expected_doc_ids: Annotated[list[NonEmpty], Field(min_length=1)]
    expected_keywords: Annotated[list[NonEmpty], Field(min_length=1)]
    kind: Kind


def validation_summary(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return "; ".join(parts)


def spread(questions: list[EvalQuestion], n: int | None) -> list[EvalQuestion]:
    """`n` of the questions, evenly spaced over the set (so every kind a set groups
    together is asked), in order; all of them when `n` is None or not smaller."""
    if n is None or n >= len(questions):
        return questions
    return [questions[i * len(questions) // n] for i in range(n)]


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read and validate a JSONL question file; blank lines are skipped.

    Raises `DataError` naming the file and line of the first problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    questions: list[EvalQuestion] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = EvalQuestion.model_validate_json(line)
        except ValidationError as exc:
            raise DataError(
                f"{path}:{lineno}: invalid question: {validation_summary(exc)}"
            ) from exc
        if question.id in first_line:
            raise DataError(
                f"{path}:{lineno}: duplicate id {question.id!r} (first on line "
                f"{first_line[question.id]})"
            )
        first_line[question.id] = lineno
        questions.append(question)
    if not questions:
        raise DataError(f"{path}: no questions")
    return questions
