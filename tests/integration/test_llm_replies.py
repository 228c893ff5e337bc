"""What the LLM client makes of replies that are not a well-formed completion stream (a
plain completion, nonsense, a stream cut without a finish_reason, no text at all), and
which error a call reports once its own failures opened the endpoint's breaker (#15)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scripts.testllm import ANSWER_PREFIX
from shared.config import Settings
from shared.errors import UpstreamUnavailable
from shared.schemas.jobs import Usage
from tests.conftest import MakeSettings
from tests.integration.breakers import ANSWER, MESSAGES, breaker_settings, chat_requests
from tests.integration.conftest import Answering, MakeLLM
from tests.integration.test_breaker_jobs import submit
from tests.integration.test_llm_path import control
from workers.rag import replies
from workers.rag.llm import LLMClient
from workers.rag.replies import Completion

pytestmark = pytest.mark.integration
MODEL = "qwen2.5-7b-instruct"
OPEN_S = 3600.0  # seconds: a breaker opened here stays open for the rest of the test


def llm_settings(make_settings: MakeSettings, testllm: str, **overrides: Any) -> Settings:
    """`breaker_settings` on the test LLM, with a breaker that stays open once opened."""
    values: dict[str, Any] = {"llm_base_url": f"{testllm}/v1", "breaker_open_s": OPEN_S}
    return breaker_settings(make_settings, **{**values, **overrides})


async def call(llm: LLMClient, completion: Completion) -> tuple[str, type[BaseException] | None]:
    """One streamed call: the text it yielded and the type of what it raised (None if
    nothing)."""
    seen: list[str] = []
    try:
        async for delta in llm.stream(
            MESSAGES, completion=completion, max_tokens=256, temperature=0, affinity="a"
        ):
            seen.append(delta)
    except Exception as exc:
        return "".join(seen), type(exc)
    return "".join(seen), None


async def plain_usage(testllm: str) -> Usage:
    """The usage the test LLM reports for the test messages, asked without streaming."""
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 256, "temperature": 0}
    async with httpx.AsyncClient() as client:
        reply = await client.post(f"{testllm}/v1/chat/completions", json=body)
    return Usage.model_validate(reply.json()["usage"])


# --------------------------------------------------------------------------- the client


async def test_a_plain_completion_answering_a_stream_request_is_the_answer(
    testllm: str, make_settings: MakeSettings, make_llm: MakeLLM
) -> None:
    """A server that ignores `stream` and sends the chat.completion JSON: its content is
    the answer and its usage the usage, from one request, the endpoint healthy."""
    await control(testllm, stream_reply="json")
    llm = make_llm(llm_settings(make_settings, testllm))
    completion = Completion(model=MODEL)
    answer = await call(llm, completion)
    requests = await chat_requests(testllm)
    expected_usage = await plain_usage(testllm)
    assert (answer, completion.usage) == ((ANSWER, None), expected_usage)
    assert (requests, await llm.state()) == (1, "ok")


@pytest.mark.parametrize("reply", ["garbage", "garbage_events"])
async def test_a_200_that_is_no_completion_is_a_failed_attempt(
    reply: str, testllm: str, make_settings: MakeSettings, make_llm: MakeLLM
) -> None:
    """A 200 whose body or events are not a completion (`{"nonsense": true}`) is an
    endpoint failure: retried, counted by the breaker (2 failures open it here), and the
    call raises UpstreamUnavailable instead of returning an empty answer."""
    await control(testllm, stream_reply=reply)
    settings = llm_settings(make_settings, testllm, llm_retries=1, breaker_failures=2)
    llm = make_llm(settings)
    outcome = await call(llm, Completion(model=MODEL))
    assert (outcome, await chat_requests(testllm)) == (("", UpstreamUnavailable), 2)
    assert await llm.state() == "degraded"


async def test_a_stream_ending_without_a_finish_reason_is_not_a_complete_answer(
    testllm: str, make_settings: MakeSettings, make_llm: MakeLLM
) -> None:
    """A stream that carries the text but ends ([DONE]) without any finish_reason may be
    cut short: after its text the call raises UpstreamUnavailable (not retried: the text
    was seen)."""
    await control(testllm, stream_reply="no_finish")
    settings = llm_settings(make_settings, testllm, llm_retries=2)
    outcome = await call(make_llm(settings), Completion(model=MODEL))
    assert (outcome, await chat_requests(testllm)) == ((ANSWER, UpstreamUnavailable), 1)


async def test_a_valid_stream_without_text_is_no_answer_from_a_healthy_endpoint(
    testllm: str, make_settings: MakeSettings, make_llm: MakeLLM
) -> None:
    """A well-formed stream with a finish_reason but no text: the call raises
    UpstreamUnavailable without a retry, and the breaker (opening on one failure here)
    counts a success; the usage is the reply's."""
    await control(testllm, stream_reply="empty")
    settings = llm_settings(make_settings, testllm, llm_retries=2, breaker_failures=1)
    llm = make_llm(settings)
    completion = Completion(model=MODEL)
    outcome = await call(llm, completion)
    requests = await chat_requests(testllm)
    prompt_tokens = (await plain_usage(testllm)).prompt_tokens
    assert (outcome, requests) == (("", UpstreamUnavailable), 1)
    assert (await llm.state(), completion.finish_reason) == ("ok", "stop")
    assert completion.usage == Usage(
        prompt_tokens=prompt_tokens, completion_tokens=0, total_tokens=prompt_tokens
    )


# --------------------------------------------------------------------------- jobs


async def test_a_job_given_a_plain_completion_answers_with_it(
    api: httpx.AsyncClient, answering: Answering, make_settings: MakeSettings, testllm: str
) -> None:
    """A job whose LLM answers the stream request with a plain chat.completion completes
    with that content and its usage, not degraded."""
    await control(testllm, stream_reply="json")
    key = await answering(llm_settings(make_settings, testllm))
    result = (await submit(api, key, "What is VLT-4031?"))["result"]
    assert (result["degraded"], result["answer"].startswith(ANSWER_PREFIX)) == (False, True)
    assert result["usage"]["completion_tokens"] == len(result["answer"].split())


@pytest.mark.parametrize("reply", ["garbage", "garbage_events", "no_finish", "empty"])
async def test_a_job_given_no_valid_answer_degrades_instead_of_completing_empty(
    reply: str,
    api: httpx.AsyncClient,
    answering: Answering,
    make_settings: MakeSettings,
    testllm: str,
) -> None:
    """Nonsense, a stream without a finish_reason or one without text: the job completes
    degraded (llm_unavailable) with the extractive answer, never as an empty success."""
    await control(testllm, stream_reply=reply)
    key = await answering(llm_settings(make_settings, testllm))
    job = await submit(api, key, "What is VLT-4031?")
    result = job["result"] or {}
    outcome = (job["status"], result.get("degraded"), result.get("degraded_reason"))
    assert outcome == ("completed", True, "llm_unavailable")
    assert "VLT-4031" in result["answer"]


@pytest.mark.parametrize(
    ("fault", "overrides", "reason"),
    [
        ({"hang": True}, {"llm_timeout_s": 0.5}, "llm_timeout"),
        ({"fail_status": 500, "fail_next": -1}, {}, "llm_unavailable"),
    ],
    ids=["timeout", "error"],
)
async def test_a_job_reports_its_own_failure_not_the_breaker_it_opened(
    fault: dict[str, Any],
    overrides: dict[str, float],
    reason: str,
    api: httpx.AsyncClient,
    answering: Answering,
    make_settings: MakeSettings,
    testllm: str,
) -> None:
    """A call that timed out (or failed) and opened the breaker by it, so that its retry is
    refused, degrades with its own reason; circuit_open is left to the next job, which the
    breaker refuses before any request."""
    await control(testllm, **fault)
    settings = llm_settings(make_settings, testllm, llm_retries=2, breaker_failures=1, **overrides)
    key = await answering(settings)
    first = (await submit(api, key, "What is VLT-4031?"))["result"]
    second = (await submit(api, key, "What is VLT-4031? (again)"))["result"]
    assert (first["degraded_reason"], second["degraded_reason"]) == (reason, "circuit_open")
    assert await chat_requests(testllm) == 1


@pytest.mark.parametrize("reply", ["sse", "garbage_events", "no_finish"])
async def test_an_sdk_without_its_event_reader_reads_replies_the_same(
    reply: str,
    testllm: str,
    make_settings: MakeSettings,
    make_llm: MakeLLM,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stream is read from the SDK's decoded events as plain JSON (no chunk object per
    token); an SDK without that reader falls back to its chunk objects, with the same
    outcome: the answer and its usage, a failed attempt, a cut stream."""
    await control(testllm, stream_reply=reply)
    settings = llm_settings(make_settings, testllm, llm_retries=0)
    fast = Completion(model=MODEL)
    fast_outcome = await call(make_llm(settings), fast)
    monkeypatch.setattr(replies, "EVENT_READER", False)
    slow = Completion(model=MODEL)
    slow_outcome = await call(make_llm(settings), slow)
    assert fast_outcome == slow_outcome
    assert (fast.usage, fast.finish_reason) == (slow.usage, slow.finish_reason)
    expected = {"sse": (ANSWER, None), "no_finish": (ANSWER, UpstreamUnavailable)}
    assert fast_outcome == expected.get(reply, ("", UpstreamUnavailable))
    if reply == "sse":
        assert fast.usage == await plain_usage(testllm)
