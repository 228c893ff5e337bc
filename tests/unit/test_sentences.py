"""Sentence splitting for extractive answers: a quoted sentence is never cut inside a number,
a version, an abbreviation, a file name, a URL or inline code, and code blocks, headings
and tables are never quoted."""

from __future__ import annotations

import pytest

from workers.rag.sentences import Unit, split_sentences, units


def test_decimals_stay_inside_their_sentence() -> None:
    """The periods in "12.5 percent" and "0.85" are not sentence ends."""
    text = "Revenue grew 12.5 percent in 2023. The margin reached 0.85 of the target."
    assert split_sentences(text) == [
        "Revenue grew 12.5 percent in 2023.",
        "The margin reached 0.85 of the target.",
    ]


def test_versions_stay_inside_their_sentence() -> None:
    """Version numbers (v2.3.1, 3.11) are not sentence ends, even before a capital."""
    text = "Upgrade to v2.3.1 before Friday. Python 3.11 is required. Version 4 ships in May."
    assert split_sentences(text) == [
        "Upgrade to v2.3.1 before Friday.",
        "Python 3.11 is required.",
        "Version 4 ships in May.",
    ]


@pytest.mark.parametrize(
    "sentence",
    [
        "Use a broker, e.g. Redis, for the queue.",
        "Pick one store, i.e. Qdrant, and keep it.",
        "Compare sparse vs. Dense retrieval on your data.",
        "Ask Dr. Smith before you rotate the key.",
        "Mr. Jones owns the billing runbook.",
        "The fix is tracked as No. 42 in the tracker.",
        "See Fig. 3 for the request path.",
        "The batch takes approx. 40 minutes.",
        "We support apples, pears, etc. and nothing else.",
    ],
)
def test_abbreviations_do_not_end_a_sentence(sentence: str) -> None:
    """A period after a known abbreviation does not cut the sentence in two."""
    assert split_sentences(f"{sentence} The next sentence follows.") == [
        sentence,
        "The next sentence follows.",
    ]


def test_etc_before_a_capital_ends_the_sentence() -> None:
    """An "etc." ends the sentence when a new one starts after it."""
    text = "Keys, tokens, certificates etc. Vault stores them all."
    assert split_sentences(text) == ["Keys, tokens, certificates etc.", "Vault stores them all."]


def test_file_names_paths_and_urls_stay_whole() -> None:
    """Dots in config.yaml, a path and a URL are not sentence ends; the period after them is."""
    text = "Edit config.yaml in ./deploy/ragq.env first. Then open https://x.example/a.b/c. Done."
    assert split_sentences(text) == [
        "Edit config.yaml in ./deploy/ragq.env first.",
        "Then open https://x.example/a.b/c.",
        "Done.",
    ]


def test_inline_code_is_never_split() -> None:
    """A period and a capital inside `code` do not end the sentence around it."""
    text = "Call `client.close(). Then reopen` to reset it. It frees the sockets."
    assert split_sentences(text) == [
        "Call `client.close(). Then reopen` to reset it.",
        "It frees the sockets.",
    ]


def test_ellipsis_ends_a_sentence_only_before_a_new_one() -> None:
    """An ellipsis before a lowercase word continues the sentence; before a capital it ends it."""
    text = "It goes on... and on. Then it stops… Later it restarts."
    assert split_sentences(text) == [
        "It goes on... and on.",
        "Then it stops…",
        "Later it restarts.",
    ]


def test_closing_quotes_and_brackets_stay_with_their_sentence() -> None:
    """Quotes and brackets after the final period belong to the sentence they close."""
    text = 'He said "rotate it." Then he left. (See the runbook.) Done!'
    assert split_sentences(text) == [
        'He said "rotate it."',
        "Then he left.",
        "(See the runbook.)",
        "Done!",
    ]


def test_wrapped_lines_are_one_sentence() -> None:
    """A sentence wrapped over lines is one sentence with single spaces."""
    assert split_sentences("The overlap window\n  defaults to\t72 hours.") == [
        "The overlap window defaults to 72 hours."
    ]


def test_fenced_code_is_never_part_of_a_sentence() -> None:
    """Text inside a code fence, periods and all, is not quoted."""
    text = "Rotate it.\n\n```bash\nvault keys rotate. Now run\n```\n\nIt takes a minute."
    assert [u.text for u in units(text)] == ["Rotate it.", "It takes a minute."]


def test_a_fence_inside_a_list_item_is_not_quoted() -> None:
    """An indented code block under a list item is not glued to the item."""
    text = "- Rotate the key:\n\n    ```bash\n    vault keys rotate. Now\n    ```\n- Verify it."
    assert [u.text for u in units(text)] == ["Rotate the key:", "Verify it."]


def test_headings_and_table_rows_are_not_units_but_headings_give_context() -> None:
    """Headings (ATX and underlined) and table rows are never quoted; the units under a
    heading know it."""
    text = (
        "# Leases\n\nA lease expires.\n\n| TTL | 24 h |\n|-----|------|\n| max | 720 h |\n\n"
        "Renewal\n=======\n\nRenew at two thirds."
    )
    assert units(text) == [
        Unit("A lease expires.", "sentence", "Leases"),
        Unit("Renew at two thirds.", "sentence", "Renewal"),
    ]


def test_each_list_item_is_its_own_unit() -> None:
    """List items ("- a", "* a", "1. a") each become one unit without their marker, and a
    wrapped item stays whole."""
    text = (
        "Before you start, read the whole runbook and check the dashboards for the service.\n\n"
        "- Measure first.\n  Then write it down.\n* Change one setting.\n1. Ship it."
    )
    assert [(u.text, u.kind) for u in units(text)] == [
        (
            "Before you start, read the whole runbook and check the dashboards for the service.",
            "sentence",
        ),
        ("Measure first. Then write it down.", "item"),
        ("Change one setting.", "item"),
        ("Ship it.", "item"),
    ]


def test_a_short_list_is_kept_with_its_lead_in() -> None:
    """A lead-in ending in ":" and a short list read as one sentence."""
    text = "Customers get a credit:\n\n- below 99.9%: 10%;\n- below 99.0%: 25%.\n\nIt is automatic."
    assert [(u.text, u.kind) for u in units(text)] == [
        ("Customers get a credit: below 99.9%: 10%; below 99.0%: 25%.", "list"),
        ("It is automatic.", "sentence"),
    ]


def test_a_long_list_is_not_glued_to_its_lead_in() -> None:
    """When lead-in and list together are long, each item stays a unit of its own."""
    items = "".join(
        f"- `GTW-50{n}` means that upstream number {n} did not answer in time.\n"
        for n in range(10, 16)
    )
    found = [(u.text, u.kind) for u in units(f"Gate adds an error code:\n\n{items}")]
    assert found == [("Gate adds an error code:", "sentence")] + [
        (f"`GTW-50{n}` means that upstream number {n} did not answer in time.", "item")
        for n in range(10, 16)
    ]


def test_a_text_starting_mid_sentence_marks_that_piece_partial() -> None:
    """A chunk cut inside a sentence (lowercase start, no final period) flags both pieces."""
    found = units("the overlap ends. Vault then retires the key. It keeps the old one for")
    assert [u.partial for u in found] == [True, False, True]
