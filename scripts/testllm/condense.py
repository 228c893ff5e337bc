"""What the test LLM answers to ragq's condensation prompt: a deterministic rewrite of the
follow-up, so that tests can tell an LLM-condensed question from ragq's own rule.

A request is a condensation when its system message contains `CONDENSE_MARKER` (a copy of
`shared.prompting.CONDENSE_MARKER`: this server imports no ragq code; a unit test checks
that the two match). Its user message holds `User: ...` / `Assistant: ...` lines and then
`Follow-up question: ...`. The rewrite is the conversation's first user turn (its first
line), a space, and the follow-up: the first question is taken for the topic, where ragq's
rule looks back only one user turn. Without a user turn the follow-up is returned as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scripts.testllm.answers import text_of

CONDENSE_MARKER = "Rewrite the follow-up question so that it stands alone"
_USER = "User: "
_FOLLOW_UP = "Follow-up question: "


def is_condensation(messages: Sequence[Mapping[str, Any]]) -> bool:
    """True for ragq's request to rewrite a follow-up (see the module docstring)."""
    return any(
        m.get("role") == "system" and CONDENSE_MARKER in text_of(m.get("content")) for m in messages
    )


def condensed_for(messages: Sequence[Mapping[str, Any]]) -> str:
    """The rewritten question the server replies to a condensation request."""
    user = [m for m in messages if m.get("role") == "user"]
    text = text_of(user[-1].get("content")) if user else ""
    first, follow_up = "", ""
    for line in text.splitlines():
        if not first and line.startswith(_USER):
            first = line[len(_USER) :].strip()
        elif line.startswith(_FOLLOW_UP):
            follow_up = line[len(_FOLLOW_UP) :].strip()
    return rewrite(first, follow_up)


def rewrite(first_user_turn: str, follow_up: str) -> str:
    """The rewrite rule itself, for tests to predict the reply."""
    return f"{first_user_turn} {follow_up}".strip()
