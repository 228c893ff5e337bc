"""The extractive answerer and the prompt: what a user gets without an LLM, and what the
LLM is sent."""

from __future__ import annotations

import re

import pytest

from shared.prompting import ANSWER_INSTRUCTION
from tests.unit.passages import cite
from workers.rag.extractive import NOTHING_FOUND, extractive_answer
from workers.rag.prompt import SYSTEM_PROMPT, build_messages


def test_picks_matching_sentences_with_their_source_numbers() -> None:
    """Sentences sharing the question's terms are chosen and end with their [n]."""
    citations = [
        cite(1, "Lunch is at noon. The cafeteria is on floor two."),
        cite(2, "Error VLT-4031 means a consumer pinned the key. Unpin it and retry."),
    ]
    answer = extractive_answer("What does VLT-4031 mean?", citations, max_sentences=1)
    assert answer == "Error VLT-4031 means a consumer pinned the key. [2]"


def test_code_headings_and_tables_are_not_quoted() -> None:
    """Fenced code, headings and table rows never become answer sentences."""
    text = (
        "# Rotate keys\n\n```bash\nvault keys rotate --key x\n```\n\n| a | b |\n\n"
        "Rotate keys weekly."
    )
    answer = extractive_answer("rotate keys", [cite(1, text)])
    assert answer == "Rotate keys weekly. [1]"


def test_no_citations_says_nothing_was_found() -> None:
    """With nothing retrieved the answer says so instead of inventing one."""
    assert extractive_answer("anything", []) == NOTHING_FOUND


def test_the_sentence_that_answers_wins_over_the_top_ranked_passage() -> None:
    """The answer quotes the sentence about the question, not the best-ranked passage's
    off-topic lines."""
    citations = [
        cite(1, "Vault runs on three nodes. Each node has its own disk. Backups run nightly."),
        cite(2, "Lunch is served at noon. The lease TTL defaults to 24 hours in vault."),
    ]
    answer = extractive_answer("What is the default lease TTL?", citations)
    assert answer == "The lease TTL defaults to 24 hours in vault. [2]"


def test_a_decimal_is_quoted_whole() -> None:
    """A decimal is quoted as written: "12.5 percent", not "5 percent"."""
    citations = [cite(1, "Revenue grew 12.5 percent in 2023. The office moved to Berlin.")]
    answer = extractive_answer("How much did revenue grow in 2023?", citations)
    assert answer == "Revenue grew 12.5 percent in 2023. [1]"


def test_dotted_config_keys_and_versions_are_quoted_whole() -> None:
    """A config key (vault.lease.max_ttl) and a version (v2.3.1) survive in the quote."""
    text = "The maximum lease TTL is 720 hours, set by `vault.lease.max_ttl` since v2.3.1 of vault."
    answer = extractive_answer("Which key sets the maximum lease TTL?", [cite(1, text)])
    assert answer == f"{text} [1]"


def test_markers_are_the_given_citation_numbers() -> None:
    """Every [n] in the answer is the index of a citation that was given."""
    citations = [
        cite(3, "Rotate keys weekly. Rotation keeps the old key for 72 hours."),
        cite(7, "A pinned consumer makes the rotation fail."),
    ]
    answer = extractive_answer("How does key rotation work?", citations)
    markers = set(re.findall(r"\[(\d+)\]", answer))
    assert markers == {"3", "7"}


def test_sentences_read_as_one_paragraph() -> None:
    """Sentences come in passage order, a run from one passage shares one marker, list items
    are capitalised and closed by a period, and no whitespace is doubled."""
    citations = [
        cite(1, "Rotation fails\n   when a consumer is pinned.\n\n- unpin the consumer to rotate;"),
        cite(2, "A rotation can also fail when the consumer is offline."),
    ]
    answer = extractive_answer("Why does rotation fail and how do I unpin a consumer?", citations)
    assert answer == (
        "Rotation fails when a consumer is pinned. Unpin the consumer to rotate. [1] "
        "A rotation can also fail when the consumer is offline. [2]"
    )


def test_the_same_sentence_from_two_passages_is_quoted_once() -> None:
    """Overlapping chunks do not make the answer repeat itself."""
    sentence = "The overlap window defaults to 72 hours."
    citations = [cite(1, sentence), cite(2, f"Rotate keys weekly. {sentence}")]
    answer = extractive_answer("How long is the overlap window?", citations)
    assert answer == f"{sentence} [1]"


REGIONS = ["Oslo", "Lima", "Pune", "Kyiv", "Doha", "Riga", "Baku", "Suva", "Apia", "Male"]


def test_answer_quotes_at_most_three_sentences() -> None:
    """However many sentences match, three are quoted by default."""
    text = " ".join(f"Keys in {r} rotate on day {n}." for n, r in enumerate(REGIONS))
    answer = extractive_answer("When do keys rotate?", [cite(1, text)])
    assert answer.count(".") == 3


def test_answer_stays_within_about_600_characters() -> None:
    """Long matching sentences are quoted only up to about 600 characters."""
    sentences = [
        "Keys rotate every Monday at 09:00 UTC, after the security team has reviewed the "
        "audit report of the previous week and confirmed that no consumer pins an old key.",
        "Signing keys rotate with a 72-hour overlap window, during which both the outgoing "
        "and the incoming key verify tokens, so that clients caching the JWKS keep working.",
        "Emergency rotations skip the overlap window entirely and revoke the compromised key "
        "at once, which breaks every client that has not refreshed its cached key set yet.",
        "Rotated keys are kept in the retired state for ninety days so that archived "
        "signatures on invoices and release artifacts can still be checked by auditors.",
    ]
    answer = extractive_answer(
        "When do keys rotate?", [cite(1, " ".join(sentences))], max_sentences=10
    )
    quoted = answer.removesuffix(" [1]")
    assert (quoted.count(". ") + 1, len(quoted) <= 600) == (3, True)


def test_with_no_matching_sentence_the_top_passage_still_answers() -> None:
    """When no sentence shares a term with the question, the best-ranked passage's opening
    is quoted rather than nothing."""
    citations = [cite(1, "Lunch is at noon. The cafeteria is on floor two."), cite(2, "Unrelated.")]
    answer = extractive_answer("zebra migration", citations, max_sentences=1)
    assert answer == "Lunch is at noon. [1]"


def test_a_passage_of_code_only_still_gives_an_answer() -> None:
    """Citations holding no prose still give a non-empty answer citing them."""
    citations = [cite(1, "```bash\nvault keys rotate --key signing\n```")]
    answer = extractive_answer("rotate", citations)
    assert answer.endswith("[1]")
    assert "vault keys rotate" in answer


@pytest.mark.parametrize(
    "text",
    ["| a | b |\n|---|---|\n| 1 | 2 |", "# Only a heading", "  \n\n ", "ok", "- x\n- y"],
)
def test_an_answer_is_never_empty_when_passages_are_given(text: str) -> None:
    """Whatever a passage holds (a table, a heading, blanks, a word), the answer says
    something and cites it."""
    answer = extractive_answer("anything at all", [cite(4, text, title="Runbook")])
    assert re.fullmatch(r"\S.* \[4\]", answer)


def test_prompt_puts_the_stable_system_prompt_first_and_numbers_sources() -> None:
    """The system prompt never varies and sources appear as [n] (title) text, in order."""
    messages = build_messages("Why?", [cite(1, "One."), cite(2, "Two.", title="T2")])
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    sources = "Sources:\n[1] (Doc) One.\n\n[2] (T2) Two.\n\n"
    assert messages[1]["content"] == f"{sources}Question: Why?\n\n{ANSWER_INSTRUCTION}"
