"""A follow-up question is asked with the one before it; a question that stands alone is
asked as it is."""

from __future__ import annotations

import pytest

from api.condense import standalone_question


@pytest.mark.parametrize(
    ("turns", "question"),
    [
        (["How do I rotate a signing key?"], "How do I rotate a signing key?"),
        (
            ["How do I rotate a signing key?", "and how do I undo it?"],
            "How do I rotate a signing key? and how do I undo it?",
        ),
        (
            ["How do I rotate a signing key?", "What happens to consumers pinned to that one?"],
            "How do I rotate a signing key? What happens to consumers pinned to that one?",
        ),
        (
            ["How do I rotate a signing key?", "When are invoices generated each month at night?"],
            "When are invoices generated each month at night?",
        ),
    ],
)
def test_follow_ups_carry_the_previous_question(turns: list[str], question: str) -> None:
    assert standalone_question(turns) == question


def test_a_long_conversation_stays_within_the_question_limit() -> None:
    assert len(standalone_question(["x " * 3000, "and then?"])) == 4000
