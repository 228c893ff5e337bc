"""The real-model tier: ragq against llama.cpp's server (`scripts/localllm/`) on
SmolLM2-135M, a real model from a PyPI wheel, with the local mode's settings.

These tests assert protocol behaviour only — streaming, usage, caching, cancelling, a
refused prompt, routing — never what the model knows (it is too small to answer well).
llama.cpp's own `/metrics` shows what reached it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from scripts.localllm.catalog import MODELS
from scripts.localllm.settings import local_env
from scripts.localllm.weights import ensure_weights
from tests.e2e.conftest import Stack, auth, finished
from tests.e2e.test_stack import DOC

pytestmark = pytest.mark.e2e

MODEL = MODELS["smollm2-135m"]
QUESTION = {"question": "How do I rotate a signing key?", "max_tokens": 48}
# five chunks on the same subject: five of them overflow a small context, one does not
LONG_DOC = {
    "id": "rotation-runbook",
    "title": "Signing key rotation runbook",
    "text": "\n\n".join(
        f"## Step {n}\n\n" + f"Step {n} of rotating a signing key: check the key, the overlap "
        "window and every consumer of the signing key before the rotation goes on. " * 6
        for n in range(1, 6)
    ),
}


@pytest.fixture(scope="session")
def smollm2() -> None:
    """The model's weights in the cache, fetched and verified once per session."""
    ensure_weights(MODEL)


@pytest.fixture
async def local(stack: Stack, smollm2: None) -> Stack:
    """A stack whose processes have the local mode's settings (no endpoint yet)."""
    stack.env.update(local_env(MODEL))
    return stack


async def _start(stack: Stack, *llama_flags: str) -> httpx.AsyncClient:
    """llama.cpp, then a worker and the API; the document indexed; a client with a key."""
    await stack.start_local_llm(MODEL.name, *llama_flags)
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    await stack.index(key, DOC)
    return httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60)


async def llama_metrics(url: str) -> dict[str, float]:
    """llama.cpp's counters (`llamacpp:NAME value` lines of its /metrics), by NAME."""
    async with httpx.AsyncClient(timeout=30) as client:
        text = (await client.get(f"{url}/metrics")).text
    pairs = (line.split() for line in text.splitlines() if line.startswith("llamacpp:"))
    return {name.removeprefix("llamacpp:"): float(value) for name, value in pairs}


async def _events(client: httpx.AsyncClient, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        async for e in source.aiter_sse():
            out.append((e.event, json.loads(e.data)))
    return out


async def test_answer_streams_usage_counts_and_a_repeat_is_cached(local: Stack) -> None:
    """The model's answer arrives as several SSE deltas that rebuild the result; usage and
    cost are the engine's own counts; the same request again (temperature 0) is answered
    from the answer cache, identical, without a second call to the engine."""
    async with await _start(local) as client:
        job_id = (await client.post("/v1/jobs", json=QUESTION)).json()["id"]
        events = await _events(client, job_id)
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        engine = await llama_metrics(local.llm_url)
        again = await client.post("/v1/rag", json=QUESTION)
        engine_after = await llama_metrics(local.llm_url)
    result = job["result"]
    deltas = [d["delta"] for name, d in events if name == "answer.delta"]
    assert job["status"] == "completed", local.log_tails()
    assert len(deltas) >= 2
    assert "".join(deltas) == result["answer"]
    assert result["degraded"] is False
    assert result["model"] == MODEL.name
    usage = result["usage"]
    assert usage["prompt_tokens"] == engine["prompt_tokens_total"] > 0
    assert usage["completion_tokens"] == engine["tokens_predicted_total"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert result["cost_usd"] > 0
    assert again.status_code == 200
    assert again.json()["cached"] is True
    assert again.json()["answer"] == result["answer"]
    assert engine_after["prompt_tokens_total"] == engine["prompt_tokens_total"]


async def test_cancel_stops_the_engine_mid_answer(local: Stack) -> None:
    """Cancelling mid-answer ends the job `cancelled` and frees the engine's slot at once:
    the engine stops decoding far short of the 3,000 tokens it was allowed (a cancel that did
    not reach it would decode until its limit), and the next question is answered."""
    long = {"question": "Explain signing key rotation in great detail.", "max_tokens": 3000}
    async with await _start(local, "--parallel", "1") as client:
        job_id = (await client.post("/v1/jobs", json=long)).json()["id"]
        async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
            async for e in source.aiter_sse():
                if e.event == "answer.delta":
                    break
        cancelled = await client.post(f"/v1/jobs/{job_id}/cancel")
        events = await _events(client, job_id)
        engine = await llama_metrics(local.llm_url)
        while engine["requests_processing"] > 0:  # across a process: bounded by the timeout
            await asyncio.sleep(0.1)
            engine = await llama_metrics(local.llm_url)
        after = await client.post("/v1/rag", json=QUESTION)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert events[-1][0] == "job.cancelled"
    assert "answer.completed" not in [name for name, _ in events]
    assert engine["n_decode_total"] < 1000, local.log_tails()
    assert after.status_code == 200
    assert after.json()["degraded"] is False


async def test_a_prompt_over_the_context_degrades_and_leaves_the_engine_healthy(
    local: Stack,
) -> None:
    """A prompt the engine refuses (400: over its context) gets the extractive answer, cited,
    not a failed job; a refusal is no sign of an unwell engine, so its breaker stays closed
    (readiness still says the LLM is ok) and a prompt that fits is answered by the model."""
    async with await _start(local, "--parallel", "1", "--ctx", "640") as client:
        await local.index(client.headers["Authorization"].removeprefix("Bearer "), LONG_DOC)
        refused = await client.post("/v1/rag", json=QUESTION)
        ready = (await client.get("/readyz")).json()
        fits = await client.post("/v1/rag", json={**QUESTION, "top_k": 1, "max_tokens": 8})
    body = refused.json()
    assert refused.status_code == 200, body
    assert body["degraded"] is True
    assert body["degraded_reason"] == "llm_unavailable"
    assert "[1]" in body["answer"]
    assert ready["checks"]["llm"] == "ok"
    assert fits.status_code == 200, local.log_tails()


async def test_router_keeps_a_prompt_prefix_on_one_engine(local: Stack) -> None:
    """In front of two llama.cpp processes, every call with the same sources (the same
    prompt prefix) goes to the same one, which reuses its prompt cache; the other gets
    none of them. Temperature 0.7: not answered from ragq's cache, each ask is a call."""
    urls = [await local.start_local_llm(MODEL.name, name=f"llm{i}") for i in (1, 2)]
    local.env["RAGQ_LLM_BASE_URL"] = ",".join(f"{u}/v1" for u in urls)
    await local.start_worker()
    await local.start_api()
    key = await local.create_key("acme")
    await local.index(key, DOC)
    async with httpx.AsyncClient(base_url=local.url, headers=auth(key), timeout=60) as client:
        for _ in range(3):
            asked = await client.post("/v1/jobs", json={**QUESTION, "temperature": 0.7})
            job = await finished(client, asked.json()["id"])
            assert job["status"] == "completed"
            assert not job["result"]["degraded"]
    engines = [await llama_metrics(u) for u in urls]
    served = sorted(engines, key=lambda m: m["prompt_tokens_total"])
    assert served[0]["prompt_tokens_total"] == 0, local.log_tails()
    assert served[1]["prompt_tokens_total"] > 0
    assert served[1]["prompt_tokens_cached_total"] > 0
