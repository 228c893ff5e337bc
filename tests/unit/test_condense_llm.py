"""Condensation by the LLM, without services: the prompt the test LLM recognises, the
reply ragq accepts as a question, what a conversation adds to the cache key and the budget
estimate, and how a chat's history becomes a job's bounded conversation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.condense import conversation_before, follows_up
from scripts.testllm import condense as testllm_condense
from shared.answercache import request_digest
from shared.budget import estimate
from shared.config import Settings
from shared.pricing import PriceTable
from shared.prompting import CONDENSE_MARKER, CONDENSE_PROMPT, condense_messages
from shared.schemas.jobs import (
    MAX_CONVERSATION_CHARS,
    MAX_CONVERSATION_TURNS,
    MAX_TURN_CHARS,
    JobCreate,
    Turn,
)
from workers.jobs.condense import _question
from workers.rag.replies import Completion

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
CONVERSATION = [
    Turn(role="user", content="When are invoices generated?"),
    Turn(role="assistant", content="On the first day of each month."),
]


def test_the_test_llm_knows_the_condensation_marker() -> None:
    """The test LLM's copy of the marker is ragq's, and ragq's prompt contains it."""
    assert testllm_condense.CONDENSE_MARKER == CONDENSE_MARKER
    assert CONDENSE_MARKER in CONDENSE_PROMPT


def test_the_test_llm_reads_the_condensation_prompt() -> None:
    """The test LLM recognises ragq's condensation messages (and not an answer prompt) and
    rewrites from the first user turn and the follow-up."""
    messages = condense_messages(CONVERSATION, "and what if it fails?")
    answer_prompt = [{"role": "system", "content": "You answer"}, messages[1]]
    assert testllm_condense.is_condensation(messages)
    assert not testllm_condense.is_condensation(answer_prompt)
    assert testllm_condense.condensed_for(messages) == (
        "When are invoices generated? and what if it fails?"
    )


@pytest.mark.parametrize(
    ("reply", "question"),
    [
        ("What if invoice generation fails?", "What if invoice generation fails?"),
        ('Question: "What if invoice generation fails?"', "What if invoice generation fails?"),
        ("\n  Standalone question: Why?\nBecause it says so.", "Why?"),
        ("", None),
        ('""', None),
        ("x" * 601, None),
    ],
)
def test_a_reply_is_taken_as_a_question_only_when_it_is_one(
    reply: str, question: str | None
) -> None:
    """The first line, without a label or quotes; empty or overlong replies are refused."""
    completion = Completion(model="m", finish_reason="stop")
    assert _question(reply, completion) == question


def test_a_reply_cut_at_the_token_limit_is_refused() -> None:
    """Half a question retrieves badly: a reply that hit max_tokens is no question."""
    assert _question("What if invoice", Completion(model="m", finish_reason="length")) is None


def test_the_conversation_is_part_of_the_request_key() -> None:
    """Two conversations ending in one question are two requests; the same is one; no
    conversation is the plain request."""

    def digest(*turns: Turn) -> str:
        return request_digest(JobCreate(question="q", conversation=list(turns)), SETTINGS)

    other = Turn(role="user", content="How do I rotate a signing key?")
    plain = request_digest(JobCreate(question="q"), SETTINGS)
    assert digest(*CONVERSATION) == digest(*CONVERSATION)
    assert len({digest(*CONVERSATION), digest(other), digest()}) == 3
    assert digest() == plain


def test_the_estimate_makes_room_for_the_condensation_call() -> None:
    """A request with a conversation may cost more than the same request without."""
    prices = PriceTable(SETTINGS)
    plain = estimate(prices, "m", JobCreate(question="q"), 1000)
    chat = estimate(prices, "m", JobCreate(question="q", conversation=CONVERSATION), 1000)
    assert chat > plain


def test_the_schema_bounds_the_conversation() -> None:
    """More turns, a longer turn or more characters together than the limits are refused."""
    turn = {"role": "user", "content": "q"}
    too_many = [turn] * (MAX_CONVERSATION_TURNS + 1)
    too_long = [{"role": "user", "content": "x" * (MAX_TURN_CHARS + 1)}]
    too_much = [{"role": "user", "content": "x" * MAX_TURN_CHARS}] * (
        MAX_CONVERSATION_CHARS // MAX_TURN_CHARS + 1
    )
    for conversation in (too_many, too_long, too_much):
        with pytest.raises(ValidationError):
            JobCreate.model_validate({"question": "q", "conversation": conversation})
    JobCreate.model_validate({"question": "q", "conversation": [turn] * MAX_CONVERSATION_TURNS})


def test_a_chat_history_becomes_the_most_recent_turns_that_fit() -> None:
    """System, tool and empty messages are left out; turns are cut to the turn limit; the
    oldest that do not fit are dropped."""
    history = [("system", "be terse"), ("user", "first"), ("tool", "{}"), ("assistant", " ")]
    history += [("user", f"q{i}") for i in range(30)] + [("assistant", "y" * 5000)]
    turns = conversation_before(history)
    assert len(turns) == MAX_CONVERSATION_TURNS
    assert turns[0] == Turn(role="user", content="q11")
    assert turns[-1] == Turn(role="assistant", content="y" * MAX_TURN_CHARS)
    assert conversation_before([("system", "x"), ("assistant", "hello")]) == [
        Turn(role="assistant", content="hello")
    ]


def test_only_a_later_question_can_follow_up() -> None:
    """A first question never follows up; a short later one does; a long one that points
    nowhere does not."""
    assert not follows_up(["and what if it fails?"])
    assert follows_up(["When are invoices generated?", "and what if it fails?"])
    assert not follows_up(["When are invoices generated?", "How do I rotate a signing key now?"])
