"""The citation check a streamed answer goes through (workers/rag/citecheck.py): which
markers a client sees, whether the answer counts as grounded, and the prompt that asks for
the markers (what the LLM reads last, what the budget estimate covers)."""

from __future__ import annotations

import random
import re

import pytest

from scripts.testllm.answers import NO_ANSWER, answer_for
from shared.budget import CITATION_FRAMING_CHARS, estimate
from shared.config import Settings
from shared.pricing import PriceTable
from shared.prompting import ANSWER_INSTRUCTION, REFUSAL
from shared.schemas.jobs import JobCreate
from tests.unit.passages import cite
from workers.rag.citecheck import (
    REFUSAL_OPENINGS,
    AnswerGate,
    CitationFilter,
    grounding,
    is_refusal,
)
from workers.rag.extractive import NOTHING_FOUND
from workers.rag.prompt import build_messages

FIVE = range(1, 6)  # five passages were given: [1] to [5]


def checked(text: str, valid: range = FIVE) -> tuple[str, list[int], list[str]]:
    """The filtered text fed whole, with the numbers cited and the markers removed."""
    check = CitationFilter(valid)
    out = check.feed(text) + check.finish()
    return out, check.cited, check.removed


def fed_in(pieces: list[str], valid: range = FIVE) -> str:
    """The filtered text of `pieces` fed one after the other."""
    check = CitationFilter(valid)
    return "".join(check.feed(p) for p in pieces) + check.finish()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Rotate weekly [9].", ("Rotate weekly.", [], ["[9]"])),
        ("Rotate weekly [0] now.", ("Rotate weekly now.", [], ["[0]"])),
        ("Rotate weekly [-1].", ("Rotate weekly.", [], ["[-1]"])),
        (
            "Rotate [123456789012345678901234567890].",
            ("Rotate.", [], ["[123456789012345678901234567890]"]),
        ),
        ("Rotate [6] weekly [2].", ("Rotate weekly [2].", [2], ["[6]"])),
        ("[7] Rotate weekly.", ("Rotate weekly.", [], ["[7]"])),
    ],
)
def test_markers_of_no_given_passage_go_with_the_space_before_them(
    text: str, expected: tuple[str, list[int], list[str]]
) -> None:
    """Out of range, zero, negative and huge numbers are removed (recorded as written),
    and so is the white space that led to them."""
    assert checked(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Rotate weekly [1][1].", ("Rotate weekly [1].", [1], [])),
        ("Rotate weekly [1] [1] [2].", ("Rotate weekly [1] [2].", [1, 2], [])),
        ("Rotate weekly [1, 2].", ("Rotate weekly [1][2].", [1, 2], [])),
        ("Rotate weekly [1; 2; 2].", ("Rotate weekly [1][2].", [1, 2], [])),
        ("Rotate weekly [Source 2].", ("Rotate weekly [2].", [2], [])),
        ("Rotate weekly [source 3, Source 1].", ("Rotate weekly [3][1].", [3, 1], [])),
        ("Rotate weekly [2, 8].", ("Rotate weekly [2].", [2], ["[8]"])),
        ("Rotate weekly [9] [2].", ("Rotate weekly [2].", [2], ["[9]"])),
        (
            "Rotate [2] and [1], then [2] again.",
            ("Rotate [2] and [1], then [2] again.", [2, 1], []),
        ),
    ],
)
def test_valid_markers_are_rewritten_one_number_each_and_once_per_run(
    text: str, expected: tuple[str, list[int], list[str]]
) -> None:
    """`[1, 2]` and `[Source 2]` become `[1][2]` and `[2]`; a number repeated in one run of
    markers is kept once (in a later sentence it is kept again); `cited` is in order of
    first use."""
    assert checked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "See [the guide](https://example.com/guide) first.",
        "Tick [x] when done, read a[i] and b[1 2].",
        "Use `keys[9]` or `[7]` here.",
        "```python\nkeys = table[9]\nprint([0])\n```\n",
        "Inline ``a ` [9]`` spans with a backtick inside.",
        "An open bracket [ and [Sourcery] are text.",
    ],
)
def test_what_is_no_marker_and_code_pass_unchanged(text: str) -> None:
    """Links, checkboxes, indexing and anything inside inline or fenced code are left as
    written."""
    assert checked(text) == (text, [], [])


def test_code_state_carries_across_feeds() -> None:
    """A fence opened in one chunk still protects what the next chunks bring, and markers
    after it closes are checked again."""
    pieces = ["Run\n``", "`\nx[9]\n", "``", "`\nDone [9] [1]."]
    assert fed_in(pieces) == "Run\n```\nx[9]\n```\nDone [1]."


def test_only_a_marker_in_progress_is_held_back() -> None:
    """A chunk's text goes out at once except a possible marker (and the space before it);
    an unclosed `[12` at the end is text."""
    check = CitationFilter(FIVE)
    first = check.feed("Rotate weekly [")
    second = check.feed("1")
    third = check.feed("] then ")
    fourth = check.feed("stop [12")
    assert (first, second, third, fourth, check.finish()) == (
        "Rotate weekly",
        "",
        " [1] then",
        " stop",
        " [12",
    )


SPLIT_TEXTS = [
    "Rotate weekly [9]. Use `vault [7]` then [1, 2][2] and [Source 3].\n\n```\n[4]\n```\nEnd [0]",
    "[6] Start. A [link](u) and [x]; a[i] [1][1] [ 2 ] [source 5; 9] unterminated [12",
    "Text ``code ` [9]`` more [5].",
]


@pytest.mark.parametrize("text", SPLIT_TEXTS)
def test_where_the_chunks_split_does_not_matter(text: str) -> None:
    """Fed whole, one character at a time, cut in two at every place or at random places,
    a text gives the same output."""
    whole = checked(text)[0]
    rng = random.Random(11)
    splits = [list(text)]
    splits += [[text[:i], text[i:]] for i in range(len(text) + 1)]
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), 6))
        splits.append([text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)])
    assert {fed_in(pieces) for pieces in splits} == {whole}


def test_an_answer_without_any_marker_is_not_grounded() -> None:
    """Passages were given and the answer cites none of them: false."""
    assert grounding("Rotate the key weekly.", FIVE) is False


def test_an_answer_citing_only_unknown_passages_is_not_grounded() -> None:
    """A `[9]` over five passages cites nothing."""
    assert grounding("Rotate the key weekly [9].", FIVE) is False


def test_a_valid_marker_grounds_the_answer() -> None:
    """One valid marker is enough."""
    assert grounding("Rotate weekly [9]. Unpin first [2].", FIVE) is True


def test_a_refusal_has_nothing_to_check() -> None:
    """An answer that says it found nothing is neither grounded nor ungrounded: null."""
    assert grounding(REFUSAL, FIVE) is None


def test_no_passages_have_nothing_to_check() -> None:
    """Without passages there is nothing to cite: null, whatever the text."""
    assert (grounding("Rotate weekly [1].", []), grounding("Rotate weekly.", [])) == (None, None)


@pytest.mark.parametrize("opening", REFUSAL_OPENINGS)
def test_every_refusal_opening_is_recognised(opening: str) -> None:
    """Each listed opening, in any case and with curly apostrophes, makes a refusal."""
    answer = opening.replace("'", "\u2019").upper() + " anything about that."
    assert is_refusal(answer)


@pytest.mark.parametrize(
    "answer",
    [
        REFUSAL,
        NOTHING_FOUND,
        NO_ANSWER,
        "  **I couldn't find** it.",
        "Sorry, but I cannot find that in the sources.",
        "Unfortunately, the provided sources do not say.",
    ],
)
def test_refusals_are_recognised_by_their_opening(answer: str) -> None:
    """The prompt's refusal, the extractive and test LLM's, and the usual wordings (after
    markup or an apology) are refusals."""
    assert is_refusal(answer)


@pytest.mark.parametrize(
    "answer",
    ["Rotate the key weekly.", "If I could not find the key, rotate it.", "The sources say so."],
)
def test_an_answer_is_no_refusal_for_a_phrase_inside_it(answer: str) -> None:
    """Only the opening counts."""
    assert not is_refusal(answer)


def test_a_held_answer_is_released_at_its_first_valid_marker() -> None:
    """Under hold nothing goes out until a valid marker: then all of it at once."""
    gate = AnswerGate(list(FIVE), hold=True)
    out = [gate.feed(d) for d in ["Rotate ", "weekly [9]", " and unpin ", "first [2]", " now."]]
    assert (out, gate.finish(), gate.grounded) == (
        ["", "", "", "Rotate weekly and unpin first [2]", " now."],
        "",
        True,
    )


def test_a_held_refusal_is_released_and_an_ungrounded_answer_never() -> None:
    """A refusal goes out once its opening is read; an answer that never cites stays held."""
    refusal, ungrounded = AnswerGate([1], hold=True), AnswerGate([1], hold=True)
    said = [refusal.feed(d) for d in ["I could ", "not find ", "it."]]
    never = [ungrounded.feed(d) for d in ["Rotate ", "weekly [7]."]] + [ungrounded.finish()]
    assert (said, refusal.grounded) == (["", "I could not find", " it."], None)
    assert (never, ungrounded.released, ungrounded.grounded) == (["", "", ""], False, False)
    assert ungrounded.text == "Rotate weekly."


def test_the_instruction_comes_after_the_question_without_an_example_answer() -> None:
    """The user turn ends with the question, then the instruction to cite; the system
    prompt says how to refuse in the words the checker knows; no literal marker is given
    anywhere for a small model to copy as its whole answer."""
    system, user = (m["content"] for m in build_messages("How often?", [cite(1, "Weekly.")]))
    assert user.endswith(f"Question: How often?\n\n{ANSWER_INSTRUCTION}")
    assert REFUSAL in system
    assert grounding(REFUSAL, [1]) is None
    assert re.search(r"\[\d+\]", system + ANSWER_INSTRUCTION) is None


def test_the_test_llm_takes_only_the_question_not_the_instruction() -> None:
    """The test LLM quotes the sentence matching the question; the instruction's words
    (sources, documents, answer, cite ...) do not pull another one in."""
    citations = [
        cite(1, "Cite the sources in your documents to answer. Keys rotate weekly."),
        cite(2, "Unpin the consumer first."),
    ]
    answer = answer_for(build_messages("How often do keys rotate?", citations))
    assert (
        answer == "According to the sources, Keys rotate weekly. [1] Unpin the consumer first. [2]"
    )


def test_the_budget_estimate_covers_the_whole_prompt() -> None:
    """The submit-time estimate is at least the cost of the largest prompt the request can
    send: every chunk at full size with a long title, the question and the instruction."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    prices = PriceTable(settings)
    request = JobCreate(question="How often do keys rotate? " * 20, top_k=3, max_tokens=64)
    title = "T" * (CITATION_FRAMING_CHARS - 10)
    citations = [cite(i, "x" * settings.chunk_max_chars, title=title) for i in (1, 2, 3)]
    messages = build_messages(request.question, citations)
    chars = sum(len(m["content"]) for m in messages)
    model = settings.llm_model
    worst = prices.worst_case(model, chars, request.max_tokens)
    assert estimate(prices, model, request, settings.chunk_max_chars) >= worst > 0
