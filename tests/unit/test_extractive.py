"""The extractive answerer and the prompt: what a user gets without an LLM, and what the
LLM is sent."""

from __future__ import annotations

from shared.schemas.jobs import Citation
from workers.rag.extractive import NOTHING_FOUND, extractive_answer
from workers.rag.prompt import SYSTEM_PROMPT, build_messages


def cite(index: int, text: str, title: str = "Doc") -> Citation:
    """A citation as retrieval would produce it."""
    return Citation(
        index=index,
        document_id=f"d{index}",
        chunk_id=f"d{index}:0",
        title=title,
        text=text,
        start=0,
        end=len(text),
        score=1.0 / index,
        rank=index,
    )


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


def test_prompt_puts_the_stable_system_prompt_first_and_numbers_sources() -> None:
    """The system prompt never varies and sources appear as [n] (title) text, in order."""
    messages = build_messages("Why?", [cite(1, "One."), cite(2, "Two.", title="T2")])
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert messages[1]["content"] == "Sources:\n[1] (Doc) One.\n\n[2] (T2) Two.\n\nQuestion: Why?"
