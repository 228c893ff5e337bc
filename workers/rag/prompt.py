"""Prompt building: a stable system prompt first, then numbered sources in a fixed order.

vLLM's prefix cache reuses the KV cache of an identical prefix, so nothing request-
specific may come before the sources, and the same chunks always render identically.
"""

from __future__ import annotations

from shared.schemas.jobs import Citation

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources the user gives you. "
    "Cite every statement with the number of its source in square brackets, like [1] or [2][3]. "
    "If the sources do not contain the answer, say that you could not find it. "
    "Be concise and do not invent facts, names or numbers."
)


def render_sources(citations: list[Citation]) -> str:
    """The sources block: `[n] (title) text`, in citation order."""
    blocks = []
    for c in citations:
        label = c.title if not c.section or c.section == c.title else f"{c.title} — {c.section}"
        blocks.append(f"[{c.index}] ({label}) {c.text}")
    return "\n\n".join(blocks)


def build_messages(question: str, citations: list[Citation]) -> list[dict[str, str]]:
    """Chat messages for the LLM."""
    sources = render_sources(citations) if citations else "(no sources found)"
    user = f"Sources:\n{sources}\n\nQuestion: {question}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def affinity_key(citations: list[Citation]) -> str:
    """What the shared prompt prefix depends on: picks the same vLLM replica for it."""
    return citations[0].chunk_id if citations else ""
