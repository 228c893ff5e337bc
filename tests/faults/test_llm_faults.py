"""Every way the LLM can fail degrades the answer, with a reason: errors, hangs, bodies that
are no completion, slow and cut streams, resets, garbage events, truncated and empty
replies. Each shape is set on the test LLM (`POST /_control`) of one running stack and
answers `JOBS` distinct questions at once (no answer cache, no coalescing between them);
every job must complete `degraded: true` with a reason, an extractive answer citing its
sources, and events whose deltas rebuild exactly `result.answer`.

A streaming request answered with a valid non-streamed `chat.completion` (an engine that
ignores `stream`) is an answer, not a fault: it completes undegraded with the LLM's text.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from redis.asyncio import Redis

from scripts.harness.redisproc import OwnRedis
from tests.e2e.conftest import Stack, auth, finished
from tests.e2e.test_stack import DOC
from tests.faults.conftest import Figures

JOBS = 10  # per shape
TIMEOUT_S = 2.0  # ragq's LLM timeout here (connect, and the longest silence in a stream)
STALL_MS = 3_000 * TIMEOUT_S  # a wait the LLM makes that outlasts that timeout
JOB_TIMEOUT_S = 15.0  # ragq's job timeout here: a stream that never ends meets it
JOB_BOUND_S = 120.0  # a job still not terminal by then counts as hung
STACK_ENV = {
    "RAGQ_JOB_TIMEOUT_S": str(JOB_TIMEOUT_S),
    "RAGQ_LLM_TIMEOUT_S": str(TIMEOUT_S),
    "RAGQ_LLM_RETRIES": "2",
    "RAGQ_LLM_RETRY_BACKOFF_S": "0.05",
    "RAGQ_LLM_RETRY_BACKOFF_MAX_S": "0.2",
}
LLM_TEXT = "According to the sources, "  # how every answer of the test LLM starts
_MARKER = re.compile(r"\[\d+\]")


@dataclass(frozen=True)
class Shape:
    """A failure of the LLM (`changes` to its behaviour) and what every job must show:
    the reasons it may degrade with (the first must be among those seen, as the first
    calls reach a closed breaker) and the LLM text a client sees before the extractive
    answer ("" for none; None when that text depends on where a cut lands)."""

    changes: dict[str, Any]
    reasons: tuple[str, ...]
    streamed: str | None = ""


# after its first text a call is healthy to the breaker: a failure then never opens it
SHAPES = {
    "error_500": Shape({"fail_status": 500, "fail_next": -1}, ("llm_unavailable", "circuit_open")),
    "error_429": Shape({"fail_status": 429, "fail_next": -1}, ("llm_unavailable", "circuit_open")),
    "error_400": Shape({"fail_status": 400, "fail_next": -1}, ("llm_unavailable",)),
    "hang": Shape({"hang": True}, ("llm_timeout", "circuit_open")),
    "garbage_body": Shape({"stream_reply": "garbage"}, ("llm_unavailable", "circuit_open")),
    # every token within the read timeout, the whole answer not within the job's timeout
    "drip_tokens": Shape({"token_latency_ms": 500 * TIMEOUT_S}, ("llm_timeout",), "According "),
    "slow_tokens": Shape({"token_latency_ms": STALL_MS}, ("llm_timeout",), "According \n\n"),
    "late_first_token": Shape(
        {"first_token_latency_ms": STALL_MS}, ("llm_timeout", "circuit_open")
    ),
    "drop_mid_stream": Shape(
        {"drop_after_tokens": 3}, ("llm_unavailable",), "According to the \n\n"
    ),
    "drop_before_headers": Shape(
        {"drop_before_headers": True}, ("llm_unavailable", "circuit_open")
    ),
    "reset_before_headers": Shape(
        {"drop_before_headers": True, "drop_with": "reset"}, ("llm_unavailable", "circuit_open")
    ),
    "reset_mid_stream": Shape(  # an RST may discard tokens sent: 0 to 3 reach ragq
        {"drop_after_tokens": 3, "drop_with": "reset"}, ("llm_unavailable", "circuit_open"), None
    ),
    "garbage_events": Shape(
        {"stream_reply": "garbage_events"}, ("llm_unavailable", "circuit_open")
    ),
    "no_finish_reason": Shape({"stream_reply": "no_finish"}, ("llm_unavailable",), LLM_TEXT),
    "empty_reply": Shape({"stream_reply": "empty"}, ("llm_unavailable",)),
}


@dataclass(frozen=True)
class Outcome:
    """What a client saw of one job."""

    status: str
    degraded: bool | None = None
    reason: str | None = None
    answer: str = ""
    citations: int = 0
    deltas: str | None = None  # the concatenated answer.delta texts of its event stream
    completed_answer: str | None = None  # answer.completed's
    seconds: float = 0.0  # from submit to terminal


async def _outcome(client: httpx.AsyncClient, question: str) -> Outcome:
    t0 = time.perf_counter()
    submitted = await client.post("/v1/jobs", json={"question": question})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    try:
        async with asyncio.timeout(JOB_BOUND_S):
            job = await finished(client, job_id)
            seconds = time.perf_counter() - t0
            deltas, completed = [], None
            async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
                async for event in source.aiter_sse():
                    data = json.loads(event.data)
                    if event.event == "answer.delta":
                        deltas.append(data["delta"])
                    elif event.event == "answer.completed":
                        completed = data["answer"]
    except TimeoutError:
        return Outcome("hung", seconds=JOB_BOUND_S)
    result = job["result"] or {}
    return Outcome(
        job["status"],
        result.get("degraded"),
        result.get("degraded_reason"),
        result.get("answer") or "",
        len(result.get("citations") or []),
        "".join(deltas),
        completed,
        seconds,
    )


def _answered(o: Outcome, shape: Shape) -> bool:
    """The answer has the LLM text the shape lets through, then an extractive answer with
    `[n]` markers (or, without a fault, the LLM's own answer), and the events rebuild it."""
    if shape.streamed is None:  # some LLM text, or none, then the extractive answer
        streamed, extractive = True, o.answer.rpartition("\n\n")[2]
    elif shape.streamed:
        streamed = o.answer.startswith(shape.streamed)
        extractive = o.answer.removeprefix(shape.streamed).rpartition("\n\n")[2]
    else:
        streamed, extractive = not o.answer.startswith(LLM_TEXT[:9]), o.answer
    return (
        streamed
        and bool(_MARKER.search(extractive))
        and o.citations > 0
        and o.deltas == o.answer == o.completed_answer
    )


def _tally(outcomes: list[Outcome], shape: Shape) -> dict[str, int]:
    """How many jobs completed, degraded, with an allowed reason, answered well."""
    return {
        "completed": sum(o.status == "completed" for o in outcomes),
        "degraded": sum(o.degraded is True for o in outcomes),
        "allowed_reason": sum(o.reason in shape.reasons for o in outcomes),
        "answered": sum(_answered(o, shape) for o in outcomes),
        "first_reason_seen": int(any(o.reason == shape.reasons[0] for o in outcomes)),
    }


def _shown(outcomes: list[Outcome], requests: int) -> str:
    """A figure: degraded share, reasons, any job not completed, the LLM requests they
    made (retries included) and the median time to answer."""
    reasons = Counter(o.reason or "none" for o in outcomes if o.status == "completed")
    others = Counter(o.status for o in outcomes if o.status != "completed")
    degraded = sum(o.degraded is True for o in outcomes)
    median = statistics.median(o.seconds for o in outcomes)
    listed = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
    unfinished = "".join(f", {n} {status}" for status, n in sorted(others.items()))
    return (
        f"{degraded}/{len(outcomes)} degraded ({listed}){unfinished}, "
        f"{requests} LLM requests, median {median:.2f} s"
    )


async def _closed_breakers(redis: Redis) -> None:
    """Forget every endpoint's breaker state (kept in Redis): the next shape starts closed."""
    names = [name async for name in redis.scan_iter(match="ragqfault:breaker:*")]
    if names:
        await redis.delete(*names)


async def _ask(
    stack: Stack, client: httpx.AsyncClient, redis: Redis, name: str, changes: dict[str, Any]
) -> tuple[list[Outcome], int]:
    """Reset the LLM and its breaker, set `changes`, answer JOBS questions at once; the
    outcomes and the number of chat requests the LLM got for them."""
    async with httpx.AsyncClient(base_url=stack.llm_url, timeout=30) as llm:
        (await llm.post("/_reset")).raise_for_status()
        await _closed_breakers(redis)
        (await llm.post("/_control", json=changes)).raise_for_status()
        questions = [f"How do I rotate a signing key? ({name} {i})" for i in range(JOBS)]
        outcomes = await asyncio.gather(*(_outcome(client, q) for q in questions))
        requests = int((await llm.get("/_stats")).json()["chat_requests"])
    return list(outcomes), requests


async def _running(stack: Stack) -> httpx.AsyncClient:
    stack.env.update(STACK_ENV)
    await stack.start_llm()
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    await stack.index(key, DOC)
    return httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60)


@pytest.mark.timeout(900)
async def test_every_llm_failure_shape_degrades_every_job_with_a_reason(
    fault_stack: Stack, own_redis: OwnRedis, figures: Figures
) -> None:
    """Under each LLM failure shape every job completes degraded, with a reason, an
    extractive answer with citations after any text already streamed, and its deltas equal
    to its answer; none fails, hangs or completes undegraded or empty. A valid non-streamed
    completion to a streaming request is the answer, undegraded."""
    client = await _running(fault_stack)
    redis = Redis.from_url(own_redis.url)
    tallies: dict[str, dict[str, int]] = {}
    shown: dict[str, str] = {}
    every_job: list[Outcome] = []
    every_request = 0
    try:
        async with client:
            for name, shape in SHAPES.items():
                outcomes, requests = await _ask(fault_stack, client, redis, name, shape.changes)
                tallies[name] = _tally(outcomes, shape)
                shown[name] = _shown(outcomes, requests)
                every_job, every_request = every_job + outcomes, every_request + requests
            json_reply = {"stream_reply": "json"}
            valid, requests = await _ask(fault_stack, client, redis, "json", json_reply)
    finally:
        await redis.aclose()
    figures("llm faults", shapes=len(SHAPES), jobs_per_shape=JOBS, llm_timeout_s=TIMEOUT_S)
    figures("llm faults", all_shapes=_shown(every_job, every_request), **shown)
    figures("llm faults", json_completion=_shown(valid, requests))
    every = dict.fromkeys(("completed", "degraded", "allowed_reason", "answered"), JOBS)
    short = {name: t for name, t in tallies.items() if t != {**every, "first_reason_seen": 1}}
    plain = [
        (o.status, o.degraded, o.reason, o.answer.startswith(LLM_TEXT), o.deltas == o.answer)
        for o in valid
    ]
    assert short == {}, f"{shown}\n{fault_stack.log_tails()}"
    assert plain == [("completed", False, None, True, True)] * JOBS
