"""Passages as retrieval would give them, for the tests of what is built from them."""

from __future__ import annotations

from shared.schemas.jobs import Citation


def cite(index: int, text: str, title: str = "Doc", section: str | None = None) -> Citation:
    """The citation `[index]`: rank `index`, its score falling with the rank."""
    return Citation(
        index=index,
        document_id=f"d{index}",
        chunk_id=f"d{index}:0",
        title=title,
        section=section,
        text=text,
        start=0,
        end=len(text),
        score=1.0 / index,
        rank=index,
    )
