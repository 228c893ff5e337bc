"""The question a chat conversation asks: its last user message, made to stand alone.

A follow-up ("and how do I undo it?") names nothing to retrieve by, so it is asked together
with the user's previous question. The rule is deterministic: a last message that is short
(at most FOLLOW_UP_WORDS words) or that leans on what came before (opens with a connective,
or points back with a pronoun) is a follow-up. A follow-up's job also carries the turns
before it (`conversation_before`), so that a worker with an LLM can rewrite it better than
the rule can (workers/jobs/condense.py); a question that stands alone carries none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from shared.schemas.jobs import (
    MAX_CONVERSATION_CHARS,
    MAX_CONVERSATION_TURNS,
    MAX_QUESTION_CHARS,
    MAX_TURN_CHARS,
    Turn,
)

FOLLOW_UP_WORDS = 6
_LEANS_BACK = re.compile(
    r"^\s*(and|but|so|also|then|what about|how about|why|instead)\b"
    r"|\b(it|its|it's|that|this|those|these|they|them|their|there|one|ones|same|else)\b",
    re.IGNORECASE,
)


def standalone_question(user_turns: Sequence[str]) -> str:
    """The question to retrieve and answer for, from the user's turns in order."""
    last = user_turns[-1].strip()
    if follows_up(user_turns):
        last = f"{user_turns[-2].strip()} {last}"
    return last[-MAX_QUESTION_CHARS:]


def follows_up(user_turns: Sequence[str]) -> bool:
    """True when the last of the user's turns leans on an earlier one (see the module
    docstring); a first question never does."""
    return len(user_turns) > 1 and _follows_up(user_turns[-1].strip())


def conversation_before(messages: Sequence[tuple[str, str]]) -> list[Turn]:
    """The job's `conversation` from the (role, text) messages before the question, oldest
    first: the user's and the assistant's non-empty turns (system and tool messages are left
    out), the most recent that fit its bounds, each cut to MAX_TURN_CHARS. A chat client
    re-sends its whole history, so a long chat is trimmed, never refused."""
    kept: list[Turn] = []
    total = 0
    for role, text in reversed(messages):
        content = text.strip()[:MAX_TURN_CHARS].strip()
        if role not in ("user", "assistant") or not content:
            continue
        if len(kept) == MAX_CONVERSATION_TURNS or total + len(content) > MAX_CONVERSATION_CHARS:
            break
        kept.append(Turn(role="user" if role == "user" else "assistant", content=content))
        total += len(content)
    return kept[::-1]


def _follows_up(text: str) -> bool:
    return len(text.split()) <= FOLLOW_UP_WORDS or _LEANS_BACK.search(text) is not None
