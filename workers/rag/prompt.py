"""Prompt building: a stable system prompt first, then numbered sources in a fixed order.

vLLM's prefix cache reuses the KV cache of an identical prefix, so nothing request-
specific may come before the sources, and the same chunks always render identically.
"""

from __future__ import annotations

import hashlib
import json

from shared.prompting import SYSTEM_PROMPT, answer_turn
from shared.schemas.jobs import Citation

__all__ = ["SYSTEM_PROMPT", "affinity_key", "build_messages", "render_sources"]


def render_sources(citations: list[Citation]) -> str:
    """The sources block: `[n] (title) text`, in citation order."""
    blocks = []
    for c in citations:
        label = c.title if not c.section or c.section == c.title else f"{c.title} — {c.section}"
        blocks.append(f"[{c.index}] ({label}) {c.text}")
    return "\n\n".join(blocks)


def build_messages(question: str, citations: list[Citation]) -> list[dict[str, str]]:
    """Chat messages for the LLM: the system prompt, then the sources, the question and
    the instruction repeated (shared/prompting.py `answer_turn`)."""
    user = answer_turn(render_sources(citations), question)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def affinity_key(citations: list[Citation]) -> str:
    """The canonical prompt prefix as a digest: the system prompt, then the cited chunk ids
    in prompt order. Calls that share it share vLLM's prefix cache, so they are routed to
    the same replica (`workers.rag.routing`); the question, which comes last, does not count."""
    prefix = json.dumps([SYSTEM_PROMPT, [c.chunk_id for c in citations]])
    return hashlib.sha256(prefix.encode()).hexdigest()
