"""The prompts: the answer's system prompt and the condensation prompt, shared because the
answer cache's request key and the submit-time budget estimate cover them too."""

from __future__ import annotations

from collections.abc import Sequence

from shared.schemas.jobs import Turn

# The answer's refusal: what the prompt asks for when the sources hold no answer (an
# answer that opens so is a refusal: workers/rag/citecheck.py REFUSAL_OPENINGS)
REFUSAL = "I could not find this in your documents."
# Measured with Qwen2.5-0.5B and 1.5B on the sample set (docs/EVAL.md): a literal marker
# such as "like [1]" in the prompt is copied as the whole answer ("[1]"), so the format is
# said in words, and the instruction is repeated at the end of the user turn, after the
# question: small models follow the last thing they read.
SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources in the user's message. "
    "Write one to three sentences. After each sentence, put the number of the source it "
    "comes from in square brackets. "
    f'If the sources do not contain the answer, reply "{REFUSAL}"'
)
ANSWER_INSTRUCTION = (
    "Answer the question in one to three sentences from the sources above, each sentence "
    "followed by its source number in square brackets."
)
NO_SOURCES = "(no sources found)"


def answer_turn(sources: str, question: str) -> str:
    """The answer's user message: the sources block, the question on its own `Question:`
    line, then `ANSWER_INSTRUCTION`."""
    return f"Sources:\n{sources or NO_SOURCES}\n\nQuestion: {question}\n\n{ANSWER_INSTRUCTION}"


# The test LLM (scripts/testllm/condense.py) recognises a condensation request by this
# phrase; it keeps its own copy (it imports no ragq code) and a unit test checks they match.
CONDENSE_MARKER = "Rewrite the follow-up question so that it stands alone"
CONDENSE_PROMPT = (
    f"{CONDENSE_MARKER}: replace every word that points back into the conversation (it, "
    "that, the first one, ...) by what it refers to, and keep its meaning and language. "
    "Do not answer it. Reply with the rewritten question only, on one line."
)
CONDENSE_MAX_TOKENS = 96  # a question, not an answer: a reply cut at this length is refused
CONDENSE_MAX_CHARS = 600  # and so is a longer one (the budget estimate counts on it)
CONDENSE_QUESTION_LABEL = "Follow-up question: "


def condense_messages(conversation: Sequence[Turn], question: str) -> list[dict[str, str]]:
    """The chat messages asking the LLM to make `question` stand alone: the condensation
    prompt, then one user message with the conversation (a `User:` / `Assistant:` line per
    turn) and the follow-up question last."""
    lines = [f"{'User' if t.role == 'user' else 'Assistant'}: {t.content}" for t in conversation]
    user = "Conversation:\n" + "\n".join(lines) + f"\n\n{CONDENSE_QUESTION_LABEL}{question}"
    return [{"role": "system", "content": CONDENSE_PROMPT}, {"role": "user", "content": user}]
