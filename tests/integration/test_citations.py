"""Checked citations on the job path with the test LLM (ragq issue #11): a marker citing no
given passage never reaches a delta or the result, every answer says whether it is grounded
(also from the cache and on the OpenAI surface), and `RAGQ_UNGROUNDED_POLICY=extractive`
replaces an answer that cites nothing without ever streaming it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from shared.config import Settings
from shared.schemas.jobs import Citation
from tests.conftest import MakeSettings
from tests.integration.conftest import Answering, auth, finished, ingest, sse_events
from tests.integration.test_llm_path import StartWorker, control, stats
from workers.rag.extractive import extractive_answer

pytestmark = pytest.mark.integration

# five passages, the first quoting a reference "[9]" the way a model copies one
DOCS = [
    {
        "id": "pinning",
        "title": "Pinned consumers",
        "text": "A pinned consumer makes the key rotation fail with VLT-4031 [9]. Unpin it.\n",
    },
    {"id": "overlap", "title": "Overlap", "text": "The key rotation overlap lasts 72 hours.\n"},
    {"id": "command", "title": "Command", "text": "Start a key rotation with vault rotate.\n"},
    {"id": "audit", "title": "Audit", "text": "Every key rotation is written to the audit log.\n"},
    {"id": "lunch", "title": "Lunch", "text": "Lunch is served at noon in the cafeteria.\n"},
]
QUESTION = "Why does the key rotation fail with VLT-4031?"
SHORT = {"question": "What is VLT-4031?", "max_tokens": 4}  # cut before its first marker


@pytest.fixture
def five_passages(
    api: httpx.AsyncClient, issue_key: Callable[..., Any], start_worker: StartWorker
) -> Answering:
    """`await five_passages(settings)`: a worker with these settings, and the key of a
    tenant (acme) whose corpus holds `DOCS`."""

    async def start(settings: Settings) -> str:
        await start_worker(settings)
        key: str = await issue_key("acme")
        for doc in DOCS:
            await ingest(api, key, doc)
        return key

    return start


def grounding_count(value: str) -> float:
    """`ragq_answer_grounding_total{grounded=value}` of this process (the in-process worker)."""
    sample = REGISTRY.get_sample_value("ragq_answer_grounding_total", {"grounded": value})
    return sample or 0.0


async def answered(
    api: httpx.AsyncClient, key: str, body: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Submit a job and wait for it: its result and its `answer.delta` texts."""
    posted = await api.post("/v1/jobs", json=body, headers=auth(key))
    assert posted.status_code == 202, posted.text
    job = await finished(api, key, posted.json()["id"])
    events = await sse_events(api, key, job["id"])
    assert job["status"] == "completed", job
    return job["result"], [d["delta"] for _, name, d in events if name == "answer.delta"]


def extractive_of(result: dict[str, Any], question: str) -> str:
    """The extractive answer to `question` over the result's citations."""
    return extractive_answer(question, [Citation.model_validate(c) for c in result["citations"]])


async def test_a_marker_of_no_given_passage_is_removed_from_stream_and_result(
    five_passages: Answering, api: httpx.AsyncClient, make_settings: MakeSettings, testllm: str
) -> None:
    """The LLM's `[9]` over five passages: no delta carries it, the deltas still make the
    answer, `removed_markers` names it and the answer, citing other passages, is grounded;
    the same request from the cache (`/v1/rag`, then the OpenAI surface) is grounded too,
    and counts no second LLM answer."""
    key = await five_passages(make_settings(llm_base_url=f"{testllm}/v1"))
    before = grounding_count("true")
    result, deltas = await answered(api, key, {"question": QUESTION, "top_k": 5})
    prompt = (await stats(testllm))["last_request"]["messages"][1]["content"]
    rag = (await api.post("/v1/rag", json={"question": QUESTION}, headers=auth(key))).json()
    chat = await api.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": QUESTION}]},
        headers=auth(key),
    )
    assert len(result["citations"]) == 5
    assert "VLT-4031 [9]" in prompt  # the LLM saw it, and quotes it
    assert "".join(deltas) == result["answer"]
    assert not any("[9" in d for d in deltas)
    assert "VLT-4031." in result["answer"]
    assert "[1]" in result["answer"]
    assert (result["removed_markers"], result["grounded"], result["degraded"]) == (
        ["[9]"],
        True,
        False,
    )
    assert (rag["cached"], rag["grounded"], rag["answer"]) == (True, True, result["answer"])
    assert chat.json()["ragq"]["grounded"] is True
    assert grounding_count("true") - before == 1


async def test_an_answer_citing_nothing_is_flagged_ungrounded(
    answering: Answering, api: httpx.AsyncClient, make_settings: MakeSettings, testllm: str
) -> None:
    """Under the default policy an LLM answer without any marker (cut by `max_tokens`
    before its first) is kept as streamed, not degraded, with `grounded: false`."""
    key = await answering(make_settings(llm_base_url=f"{testllm}/v1"))
    before = grounding_count("false")
    result, deltas = await answered(api, key, SHORT)
    assert result["answer"].startswith("According to the sources")
    assert "".join(deltas) == result["answer"]
    assert (result["grounded"], result["degraded"], result["removed_markers"]) == (
        False,
        False,
        [],
    )
    assert grounding_count("false") - before == 1


async def test_under_the_extractive_policy_an_ungrounded_answer_is_never_streamed(
    answering: Answering, api: httpx.AsyncClient, make_settings: MakeSettings, testllm: str
) -> None:
    """`RAGQ_UNGROUNDED_POLICY=extractive`: the answer citing nothing is replaced by the
    extractive one (`ungrounded`), which is all the deltas carry; the call's tokens still
    count, and the degraded answer is not cached (the same request asks the LLM again)."""
    settings = make_settings(llm_base_url=f"{testllm}/v1", ungrounded_policy="extractive")
    key = await answering(settings)
    result, deltas = await answered(api, key, SHORT)
    again, _ = await answered(api, key, SHORT)
    calls = (await stats(testllm))["chat_requests"]
    assert (result["degraded"], result["degraded_reason"]) == (True, "ungrounded")
    assert result["answer"] == extractive_of(result, SHORT["question"])
    assert "".join(deltas) == result["answer"]
    assert not any("According" in d for d in deltas)
    assert (result["grounded"], result["usage"]["completion_tokens"]) == (True, 4)
    assert (again["cached"], again["degraded_reason"], calls) == (False, "ungrounded", 2)


async def test_under_the_extractive_policy_a_grounded_answer_still_streams(
    answering: Answering, api: httpx.AsyncClient, make_settings: MakeSettings, testllm: str
) -> None:
    """An answer that cites a passage is released at its first marker and streams on from
    the LLM: not degraded, grounded, the deltas making the answer."""
    settings = make_settings(llm_base_url=f"{testllm}/v1", ungrounded_policy="extractive")
    key = await answering(settings)
    result, deltas = await answered(api, key, {"question": "What is VLT-4031?"})
    assert (result["degraded"], result["grounded"]) == (False, True)
    assert result["answer"].startswith("According to the sources")
    assert deltas[0].startswith("According to the sources")
    assert deltas[0].endswith("[1]")  # held back until its first marker, then at once
    assert len(deltas) > 1
    assert "".join(deltas) == result["answer"]


@pytest.mark.parametrize(("policy", "streamed"), [("flag", True), ("extractive", False)])
async def test_a_stream_cut_before_its_first_marker(
    policy: str,
    streamed: bool,
    answering: Answering,
    api: httpx.AsyncClient,
    make_settings: MakeSettings,
    testllm: str,
) -> None:
    """The LLM fails after three tokens: under `flag` they stay in the answer (before the
    extractive one), under `extractive` nothing of them was released and none is kept."""
    await control(testllm, drop_after_tokens=3)
    settings = make_settings(llm_base_url=f"{testllm}/v1", ungrounded_policy=policy, llm_retries=0)
    key = await answering(settings)
    question = "What is VLT-4031?"
    result, deltas = await answered(api, key, {"question": question})
    fallback = extractive_of(result, question)
    expected = f"According to the \n\n{fallback}" if streamed else fallback
    assert (result["degraded"], result["degraded_reason"]) == (True, "llm_unavailable")
    assert (result["answer"], "".join(deltas)) == (expected, expected)


@pytest.mark.parametrize(("policy", "held"), [("flag", False), ("extractive", True)])
async def test_an_uncited_answer_copied_from_the_passages_gets_their_markers(
    policy: str,
    held: bool,
    five_passages: Answering,
    api: httpx.AsyncClient,
    make_settings: MakeSettings,
    testllm: str,
) -> None:
    """The LLM quotes its five passages without a marker (the way small models copy): every
    sentence is found in a passage, so ragq appends their markers after the answer and lists
    them in `added_markers`: under `flag` as the last delta, under `extractive` with the
    whole answer held back till then. Grounded, not degraded, and so is its cached copy."""
    await control(testllm, cite=False)
    key = await five_passages(make_settings(llm_base_url=f"{testllm}/v1", ungrounded_policy=policy))
    before = grounding_count("attributed")
    result, deltas = await answered(api, key, {"question": QUESTION, "top_k": 5})
    again, _ = await answered(api, key, {"question": QUESTION, "top_k": 5})
    added = ["[1]", "[2]", "[3]", "[4]", "[5]"]
    assert result["answer"].startswith("According to the sources, ")
    assert result["answer"].endswith("cafeteria. [1][2][3][4][5]")
    assert result["answer"].count("[") == 5  # the passage's own "[9]" was removed
    assert "".join(deltas) == result["answer"]
    # the markers come last, in the delta that ends the answer (tokens come batched)
    assert deltas[-1] == result["answer"] if held else deltas[-1].endswith(" [1][2][3][4][5]")
    assert len(deltas) == 1 if held else len(deltas) > 1
    assert (result["grounded"], result["degraded"], result["added_markers"]) == (
        True,
        False,
        added,
    )
    assert (again["cached"], again["answer"], again["added_markers"]) == (
        True,
        result["answer"],
        added,
    )
    assert grounding_count("attributed") - before == 1
