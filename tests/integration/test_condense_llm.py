"""Follow-ups condensed by the LLM: a chat follow-up the deterministic rule resolves against
the wrong turn is rewritten by the test LLM from the whole conversation and retrieves the
right document; a failing condensation falls back to the rule; standalone questions cost
no extra call; different conversations do not share cached answers; the rewrite is paid
for by the job; the conversation's bounds on `POST /v1/jobs`, and a long chat trimmed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from scripts.testllm.answers import split_tokens
from scripts.testllm.condense import rewrite
from shared.config import Settings
from tests.conftest import MakeSettings, api_with
from tests.integration.conftest import Answering, auth, ingest, sse_events
from tests.integration.protection import llm_settings
from tests.integration.test_job_path import BILLING, ROTATION
from tests.integration.test_llm_path import control, stats

pytestmark = pytest.mark.integration
StartWorker = Callable[[Settings], Awaitable[None]]

INVOICES = "When are invoices generated?"
ROTATE = "How do I rotate a signing key?"
THEN = "and then?"
FAILS = "and what if it fails?"
# the rule looks back one user turn only: "and then?", which names nothing
RULE_QUESTION = f"{THEN} {FAILS}"


def chat(*turns: str) -> list[dict[str, str]]:
    """User turns with an assistant reply between each two."""
    messages: list[dict[str, str]] = []
    for i, turn in enumerate(turns):
        if i:
            messages.append({"role": "assistant", "content": "Here is what I found."})
        messages.append({"role": "user", "content": turn})
    return messages


async def ask(api: httpx.AsyncClient, key: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    """A chat completion with top_k 1 (so the one citation is what retrieval ranked first)."""
    body = {"model": "ragq", "messages": messages, "top_k": 1}
    response = await api.post("/v1/chat/completions", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


def cited(reply: dict[str, Any]) -> str:
    """The document the reply cites."""
    return str(reply["citations"][0]["document_id"])


async def query(api: httpx.AsyncClient, key: str, reply: dict[str, Any]) -> str | None:
    """The question the reply's job retrieved by (its `retrieval.completed` event)."""
    events = await sse_events(api, key, reply["ragq"]["job_id"])
    return next(d.get("query") for _, name, d in events if name == "retrieval.completed")


def condensed(outcome: str) -> float:
    """`ragq_condense_total{outcome}` in this process (the in-process API and worker)."""
    return REGISTRY.get_sample_value("ragq_condense_total", {"outcome": outcome}) or 0.0


@pytest.fixture
async def key(
    api: httpx.AsyncClient, answering: Answering, make_settings: MakeSettings, testllm: str
) -> str:
    """A tenant with the rotation and invoice documents, answered by a worker whose LLM is
    the test server (no retries, so a failure is one request)."""
    key = await answering(make_settings(llm_base_url=f"{testllm}/v1", llm_retries=0))
    await ingest(api, key, BILLING)
    return key


async def test_the_llm_rewrites_a_follow_up_from_the_whole_conversation(
    api: httpx.AsyncClient, key: str, testllm: str
) -> None:
    """Invoices, then "and then?", then "and what if it fails?": one condensation call, whose
    rewrite (the first question and the follow-up) is what retrieval ran on, so the invoice
    document is cited; its tokens are part of the job's usage."""
    before = condensed("llm")
    reply = await ask(api, key, chat(INVOICES, THEN, FAILS))
    events = await sse_events(api, key, reply["ragq"]["job_id"])
    deltas = [d["delta"] for _, name, d in events if name == "answer.delta"]
    rewritten = rewrite(INVOICES, RULE_QUESTION)
    counters = await stats(testllm)
    assert counters["condense_requests"] == 1
    assert counters["chat_requests"] == 2  # the rewrite, then the answer
    assert await query(api, key, reply) == rewritten
    assert cited(reply) == "invoices"
    assert reply["ragq"]["degraded"] is False
    answer_tokens = split_tokens("".join(deltas))  # the test LLM's tokens of the answer
    assert reply["usage"]["completion_tokens"] == len(answer_tokens) + len(split_tokens(rewritten))
    assert condensed("llm") - before == 1


async def test_a_failing_condensation_falls_back_to_the_rule(
    api: httpx.AsyncClient, key: str, testllm: str
) -> None:
    """With every condensation request failing, the same chat is still answered by the
    LLM, retrieving by the rule's question (which finds the rotation document, as the rule
    alone would), and the fallback is counted."""
    await control(testllm, condense_fail_status=503)
    before = condensed("fallback")
    reply = await ask(api, key, chat(INVOICES, THEN, FAILS))
    counters = await stats(testllm)
    assert counters["condense_requests"] == 1
    assert counters["chat_failures_injected"] == 1
    assert await query(api, key, reply) == RULE_QUESTION
    assert cited(reply) == "key-rotation"
    assert reply["ragq"]["degraded"] is False
    assert reply["choices"][0]["message"]["content"].startswith("According to the sources, ")
    assert condensed("fallback") - before == 1


async def test_a_question_that_stands_alone_costs_no_condensation(
    api: httpx.AsyncClient, key: str, testllm: str
) -> None:
    """A single question, and a second question the rule finds standalone, make no
    condensation call; the second is counted as skipped and carries no conversation."""
    before = condensed("skipped")
    first = await ask(api, key, chat(INVOICES))
    second = await ask(api, key, chat(INVOICES, "How do I rotate a signing key with vault?"))
    job = (await api.get(f"/v1/jobs/{second['ragq']['job_id']}", headers=auth(key))).json()
    assert (await stats(testllm))["condense_requests"] == 0
    assert (cited(first), cited(second)) == ("invoices", "key-rotation")
    assert job["request"]["conversation"] == []
    assert condensed("skipped") - before == 1


async def test_conversations_ending_alike_do_not_share_a_cached_answer(
    api: httpx.AsyncClient, key: str, testllm: str
) -> None:
    """Two chats ending in the same follow-up (the same rule question) get answers of their
    own topic; asking the first chat again is a cache hit."""
    invoices = await ask(api, key, chat(INVOICES, THEN, FAILS))
    rotation = await ask(api, key, chat(ROTATE, THEN, FAILS))
    again = await ask(api, key, chat(INVOICES, THEN, FAILS))
    assert (cited(invoices), cited(rotation), cited(again)) == (
        "invoices",
        "key-rotation",
        "invoices",
    )
    assert (invoices["ragq"]["cached"], rotation["ragq"]["cached"]) == (False, False)
    assert again["ragq"]["cached"] is True
    assert (await stats(testllm))["condense_requests"] == 2


async def test_jobs_take_a_conversation(api: httpx.AsyncClient, key: str) -> None:
    """`POST /v1/jobs` with a conversation is condensed the same way, and echoes it."""
    conversation = [
        {"role": "user", "content": INVOICES},
        {"role": "assistant", "content": "On the first day of each month."},
    ]
    body = {"question": FAILS, "top_k": 1, "conversation": conversation}
    submitted = await api.post("/v1/jobs", json=body, headers=auth(key))
    events = await sse_events(api, key, submitted.json()["id"])
    retrieved = next(d for _, name, d in events if name == "retrieval.completed")
    done = events[-1][2]
    assert submitted.status_code == 202
    assert retrieved["query"] == rewrite(INVOICES, FAILS)
    assert retrieved["citations"][0]["document_id"] == "invoices"
    assert done["request"]["conversation"] == conversation


@pytest.mark.parametrize(
    ("conversation", "field"),
    [
        ([{"role": "user", "content": "q"}] * 21, ["body", "conversation"]),
        ([{"role": "user", "content": "x" * 4001}], ["body", "conversation", "0", "content"]),
        ([{"role": "user", "content": "x" * 4000}] * 5, ["body", "conversation"]),
        ([{"role": "system", "content": "be terse"}], ["body", "conversation", "0", "role"]),
        ([{"role": "user", "content": "  "}], ["body", "conversation", "0", "content"]),
        ([{"role": "user", "content": "q", "name": "x"}], ["body", "conversation", "0", "name"]),
    ],
)
async def test_an_out_of_bounds_conversation_is_a_422(
    api: httpx.AsyncClient, key: str, conversation: list[dict[str, str]], field: list[Any]
) -> None:
    """Over 20 turns, a turn over 4000 characters, over 16000 together, a role other than
    user or assistant, an empty turn or an unknown field: 422 naming the field."""
    body = {"question": FAILS, "conversation": conversation}
    response = await api.post("/v1/jobs", json=body, headers=auth(key))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == field


async def test_a_long_chat_is_trimmed_not_refused(
    api: httpx.AsyncClient, key: str, testllm: str
) -> None:
    """A chat of 30 exchanges with 5000-character replies is answered; its job carries the
    most recent turns that fit the bounds, each cut to 4000 characters."""
    messages: list[dict[str, str]] = []
    for i in range(30):
        messages.append({"role": "user", "content": f"question {i} about invoices"})
        messages.append({"role": "assistant", "content": "y" * 5000})
    messages.append({"role": "user", "content": FAILS})
    reply = await ask(api, key, messages)
    job = (await api.get(f"/v1/jobs/{reply['ragq']['job_id']}", headers=auth(key))).json()
    turns = job["request"]["conversation"]
    assert [len(t["content"]) for t in turns] == [len("question 27 about invoices"), 4000] * 3
    assert turns[0] == {"role": "user", "content": "question 27 about invoices"}
    assert turns[-1]["role"] == "assistant"
    assert (await stats(testllm))["condense_requests"] == 1


@pytest.mark.parametrize("policy", ["degrade", "reject"])
async def test_the_condensation_is_paid_for_by_the_job(
    policy: str,
    make_settings: MakeSettings,
    start_worker: StartWorker,
    issue_key: Callable[..., Any],
    testllm: str,
) -> None:
    """At $1 per completion token, a condensed job costs its rewrite's tokens plus its
    answer's, and the tenant's spend is exactly that, whether reserved by the worker
    (`degrade`) or at submit (`reject`)."""
    settings = llm_settings(make_settings, testllm, budget_policy=policy)
    await start_worker(settings)
    key = await issue_key("acme", daily_budget_usd=1000.0)
    async with api_with(settings) as api:
        await ingest(api, key, ROTATION)
        await ingest(api, key, BILLING)
        body = {"model": "ragq", "messages": chat(INVOICES, THEN, FAILS), "max_tokens": 10}
        reply = (await api.post("/v1/chat/completions", json=body, headers=auth(key))).json()
        usage = (await api.get("/v1/usage", headers=auth(key))).json()
    rewrite_tokens = len(split_tokens(rewrite(INVOICES, RULE_QUESTION)))
    answer_tokens = reply["usage"]["completion_tokens"] - rewrite_tokens
    job = reply["ragq"]
    assert job["degraded"] is False
    assert 0 < answer_tokens <= 10
    assert usage["spend_usd"] == reply["usage"]["completion_tokens"] * 1.0
    assert (await stats(testllm))["condense_requests"] == 1
