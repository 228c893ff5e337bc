"""Markers for an answer that cites none (workers/rag/attribution.py): added only when every
sentence that says something is found in a passage, and streamed after the answer."""

from __future__ import annotations

from tests.unit.passages import cite
from workers.rag.attribution import attribute, markers
from workers.rag.citecheck import AnswerGate

ROTATION = cite(
    1,
    "You need the vault:keys:rotate permission. Run vault keys rotate to create the successor "
    "key. The overlap defaults to 72 hours.",
    "Rotating signing keys",
)
PINNING = cite(2, "A pinned consumer makes the rotation fail with VLT-4031. Unpin it first.")
LUNCH = cite(3, "Lunch is served at noon in the cafeteria.")
PASSAGES = [ROTATION, PINNING, LUNCH]


def test_an_answer_copied_from_two_passages_is_attributed_to_both_in_order() -> None:
    answer = (
        "A pinned consumer makes the rotation fail with VLT-4031. To rotate, you need the "
        "vault:keys:rotate permission and run vault keys rotate to create the successor key."
    )
    assert attribute(answer, PASSAGES) == [2, 1]


def test_sentences_from_one_passage_name_it_once() -> None:
    answer = "Run vault keys rotate to create the successor key. The overlap defaults to 72 hours."
    assert attribute(answer, PASSAGES) == [1]


def test_one_sentence_no_passage_holds_attributes_nothing() -> None:
    """The model's own claim beside a copied sentence: nothing is added at all."""
    answer = (
        "Run vault keys rotate to create the successor key. Afterwards every dashboard "
        "widget refreshes its browser tokens automatically."
    )
    assert attribute(answer, PASSAGES) == []


def test_a_changed_number_is_not_found_in_the_passage() -> None:
    """Every word of the passage but the number: 48 is in none, so nothing is attributed."""
    assert attribute("The overlap defaults to 48 hours.", PASSAGES) == []
    assert attribute("The overlap defaults to 72 hours.", PASSAGES) == [1]


def test_the_question_restated_with_a_made_up_answer_is_not_attributed() -> None:
    answer = "An outgoing signature-checking credential stays accepted for 72 hours after rollover."
    assert attribute(answer, PASSAGES) == []


def test_sentences_that_say_nothing_are_skipped_but_some_sentence_must_speak() -> None:
    assert attribute(
        "Here is how. Run vault keys rotate to create the successor key.", PASSAGES
    ) == [1]
    assert attribute("Yes. Sure thing.", PASSAGES) == []
    assert attribute("", PASSAGES) == []


def test_the_title_and_section_count_as_the_passages_words() -> None:
    """ "Signing keys" is the title's, not the text's."""
    assert attribute("Rotating signing keys needs the vault:keys:rotate permission.", PASSAGES) == [
        1
    ]


def test_markers_follow_prose_with_a_space_and_lists_or_code_after_a_blank_line() -> None:
    assert markers([2, 1], "It fails with VLT-4031.") == " [2][1]"
    assert markers([1], "It fails.\n") == "[1]"
    assert markers([1], "Steps:\n\n1. Run it.\n2. Check it.") == "\n\n[1]"
    assert markers([1], "Steps:\n- Run it.") == "\n\n[1]"
    assert markers([1], "```\nvault keys rotate\n```") == "\n\n[1]"


def test_an_attributed_answer_held_back_is_released_with_its_markers() -> None:
    """Under the `extractive` policy the uncited text was held: attribution releases it,
    markers appended, and the answer counts as grounded."""
    gate = AnswerGate([1, 2, 3], hold=True)
    streamed = gate.feed("The overlap defaults to 72 hours.") + gate.finish()
    assert (streamed, gate.released, gate.grounded) == ("", False, False)
    released = gate.attribute(attribute(gate.text, PASSAGES))
    assert released == "The overlap defaults to 72 hours. [1]"
    assert (gate.released, gate.grounded, gate.text) == (True, True, released)


def test_an_attributed_answer_already_streamed_gets_only_the_markers() -> None:
    gate = AnswerGate([1, 2, 3], hold=False)
    streamed = gate.feed("The overlap defaults to 72 hours.") + gate.finish()
    assert gate.attribute([1]) == " [1]"
    assert gate.text == streamed + " [1]"
    assert gate.grounded is True
