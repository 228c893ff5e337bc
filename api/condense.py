"""The question a chat conversation asks: its last user message, made to stand alone.

A follow-up ("and how do I undo it?") names nothing to retrieve by, so it is asked together
with the user's previous question. The rule is deterministic: a last message that is short
(at most FOLLOW_UP_WORDS words) or that leans on what came before (opens with a connective,
or points back with a pronoun) is a follow-up.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

FOLLOW_UP_WORDS = 6
MAX_QUESTION_CHARS = 4000  # JobCreate.question's limit
_LEANS_BACK = re.compile(
    r"^\s*(and|but|so|also|then|what about|how about|why|instead)\b"
    r"|\b(it|its|it's|that|this|those|these|they|them|their|there|one|ones|same|else)\b",
    re.IGNORECASE,
)


def standalone_question(user_turns: Sequence[str]) -> str:
    """The question to retrieve and answer for, from the user's turns in order."""
    last = user_turns[-1].strip()
    if len(user_turns) > 1 and _follows_up(last):
        last = f"{user_turns[-2].strip()} {last}"
    return last[-MAX_QUESTION_CHARS:]


def _follows_up(text: str) -> bool:
    return len(text.split()) <= FOLLOW_UP_WORDS or _LEANS_BACK.search(text) is not None
