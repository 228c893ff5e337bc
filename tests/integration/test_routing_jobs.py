"""Jobs over several vLLM replicas and inference tiers, on real Redis with test LLM
servers: failover from a killed replica with no job failing, and tiers whose endpoints,
models and breakers stay apart. Run with `-s` to see the figures."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.testllm import Behaviour, serve_testllm
from shared.config import Settings
from tests.conftest import MakeSettings, api_with
from tests.integration.conftest import auth, finished, ingest
from tests.integration.test_llm_path import control
from tests.integration.test_routing import DEFAULT_MODEL, chat_requests, llm_urls, report

pytestmark = pytest.mark.integration
StartWorker = Callable[[Settings], Awaitable[None]]
ROOT = Path(__file__).resolve().parents[2]
ENTERPRISE_MODEL = "qwen2.5-72b-instruct"
CONSUMER_MODEL = "qwen2.5-3b-instruct"
# one made-up product per document, so each question retrieves its own chunk (its own prefix)
TOPICS = [
    "zorblax", "quimtrel", "fandovik", "plexaron", "trinquel", "vostrada",
    "mekalune", "durnspar", "oxilith", "brevacor", "sylmarin", "kettlewyn",
]  # fmt: skip


@contextlib.asynccontextmanager
async def llm_process() -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A test LLM server in its own process (so it can be SIGKILLed); yields URL and process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scripts.testllm",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("READY "), line
        yield line.split()[1], proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def submit(api: httpx.AsyncClient, key: str, question: str, **body: Any) -> dict[str, Any]:
    """Submit a question and wait for its job to end."""
    posted = await api.post("/v1/jobs", json={"question": question, **body}, headers=auth(key))
    assert posted.status_code == 202, posted.text
    return await finished(api, key, posted.json()["id"])


async def test_a_killed_replica_moves_its_traffic_and_no_job_fails(
    make_settings: MakeSettings, start_worker: StartWorker, issue_key: Callable[..., Any]
) -> None:
    """Three replicas as processes; 12 jobs with 12 different prefixes spread over them.
    The busiest replica is SIGKILLed; the same 12 jobs again (retries off, so failover is
    within one attempt) all complete, none degraded, on the two survivors."""
    async with (
        llm_process() as (url_a, proc_a),
        llm_process() as (url_b, proc_b),
        llm_process() as (url_c, proc_c),
    ):
        urls, procs = [url_a, url_b, url_c], [proc_a, proc_b, proc_c]
        settings = make_settings(llm_base_url=llm_urls(urls), llm_retries=0, answer_cache_ttl_s=0)
        await start_worker(settings)
        key = await issue_key("acme")
        async with api_with(settings) as api:
            for topic in TOPICS:
                text = f"The {topic} service rotates its {topic} keys every night at two."
                await ingest(api, key, {"id": topic, "title": topic.title(), "text": text})
            questions = [f"When does {topic} rotate its keys?" for topic in TOPICS]
            body = {"top_k": 1}
            before = await asyncio.gather(*(submit(api, key, q, **body) for q in questions))
            first_round = await chat_requests(urls)
            victim = first_round.index(max(first_round))
            procs[victim].send_signal(signal.SIGKILL)
            await procs[victim].wait()
            after = await asyncio.gather(*(submit(api, key, q, **body) for q in questions))
        survivors = [u for i, u in enumerate(urls) if i != victim]
        second_round = await chat_requests(survivors)
    moved = [s - first_round[urls.index(u)] for s, u in zip(second_round, survivors, strict=True)]
    prefixes = {tuple(c["chunk_id"] for c in j["result"]["citations"]) for j in before}
    figures = report(
        "a killed replica",
        [
            f"{len(prefixes)} prefixes; first round per replica: {first_round}",
            f"replica {victim} SIGKILLed; second round per survivor: {moved}",
            f"second round: {sum(j['status'] == 'completed' for j in after)} completed, "
            f"{sum(bool(j['result'] and j['result']['degraded']) for j in after)} degraded",
        ],
    )
    for job in [*before, *after]:
        assert job["status"] == "completed", figures
        assert job["result"]["degraded"] is False, (job["result"]["degraded_reason"], figures)
    assert len(prefixes) == len(TOPICS), figures
    assert first_round[victim] > 0, figures
    assert sum(moved) == len(TOPICS), figures


async def test_each_tier_answers_on_its_own_endpoints_and_fails_alone(
    make_settings: MakeSettings, start_worker: StartWorker, issue_key: Callable[..., Any]
) -> None:
    """Keys of the enterprise, consumer and default tiers (and of an unconfigured tier,
    served as default) get answers from their own server and model, even for the same
    question in the same tenant; a model outside the key's tier is a 422. With the
    enterprise server failing until its breaker opens, consumer answers stay whole."""
    async with (
        serve_testllm(Behaviour(), model=ENTERPRISE_MODEL) as large,
        serve_testllm(Behaviour(), model=CONSUMER_MODEL) as small,
        serve_testllm(Behaviour(), model=DEFAULT_MODEL) as plain,
    ):
        settings = make_settings(
            llm_base_url=f"{plain}/v1",
            llm_tiers={
                "enterprise": {
                    "base_url": f"{large}/v1",
                    "model": ENTERPRISE_MODEL,
                    "models": "legal-lora",
                },
                "consumer": {"base_url": f"{small}/v1", "model": CONSUMER_MODEL},
            },
            llm_retries=0,
            breaker_failures=3,
            breaker_min_calls=1000,
            breaker_open_s=3600,  # open for the rest of the test, however slow the machine
        )
        await start_worker(settings)
        keys = {
            tier: await issue_key("acme", tier=tier)
            for tier in ("enterprise", "consumer", "default", "unconfigured")
        }
        async with api_with(settings) as api:
            text = "Rotate a signing key with vault keys rotate. The overlap is 72 hours."
            await ingest(api, keys["default"], {"id": "rot", "title": "Rotation", "text": text})
            question = "How do I rotate a signing key?"
            models = {
                tier: (await submit(api, key, question))["result"] for tier, key in keys.items()
            }
            served = await chat_requests([large, small, plain])
            named = [
                await api.post(
                    "/v1/jobs", json={"question": question, "model": model}, headers=auth(key)
                )
                for key, model in [
                    (keys["consumer"], ENTERPRISE_MODEL),
                    (keys["default"], "legal-lora"),
                    (keys["enterprise"], "legal-lora"),  # a LoRA adapter the tier serves
                ]
            ]
            lora = await finished(api, keys["enterprise"], named[2].json()["id"])

            await control(large, fail_status=503, fail_next=-1)
            outage = [
                (await submit(api, keys["enterprise"], f"{question} ({i})"))["result"]
                for i in range(4)
            ]
            consumer = [
                (await submit(api, keys["consumer"], f"{question} [{i}]"))["result"]
                for i in range(4)
            ]
            plain_after = (await submit(api, keys["default"], f"{question} (after)"))["result"]
    figures = report(
        "tiers",
        [
            f"models by tier: { {t: r['model'] for t, r in models.items()} }",
            f"chat requests enterprise/consumer/default servers: {served}",
            f"enterprise outage: {[r['degraded_reason'] for r in outage]}",
            f"consumer meanwhile: {[r['model'] for r in consumer]}, "
            f"degraded {[r['degraded'] for r in consumer]}",
        ],
    )
    assert {t: (r["model"], r["degraded"]) for t, r in models.items()} == {
        "enterprise": (ENTERPRISE_MODEL, False),
        "consumer": (CONSUMER_MODEL, False),
        "default": (DEFAULT_MODEL, False),
        "unconfigured": (DEFAULT_MODEL, False),
    }, figures
    assert not any(r["cached"] for t, r in models.items() if t != "unconfigured"), figures
    assert served[:2] == [1, 1], figures
    assert [r.status_code for r in named] == [422, 422, 202], figures
    assert lora["request"]["model"] == "legal-lora", figures
    assert [r["degraded_reason"] for r in outage] == [
        "llm_unavailable",
        "llm_unavailable",
        "llm_unavailable",
        "circuit_open",
    ], figures
    assert all(r["model"] == CONSUMER_MODEL and not r["degraded"] for r in consumer), figures
    assert (plain_after["model"], plain_after["degraded"]) == (DEFAULT_MODEL, False), figures
