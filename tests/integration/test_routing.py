"""Several vLLM replicas and inference tiers on real Redis with three test LLM servers:
prefix-affine routing, the bounded-load cap, failover from a killed replica, and tiers
whose endpoints, models and breakers stay apart. Run with `-s` to see the figures."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from scripts.testllm import Behaviour, serve_testllm
from shared.config import Settings
from shared.redis_keys import Keys
from shared.schemas.jobs import Citation
from tests.conftest import MakeSettings, api_with
from tests.integration.conftest import auth, finished, ingest
from tests.integration.test_llm_path import control, stats
from workers.rag.llm import LLMClient
from workers.rag.prompt import affinity_key, build_messages
from workers.rag.replies import Completion
from workers.rag.routing import Router, Slot, load_cap

pytestmark = pytest.mark.integration
StartWorker = Callable[[Settings], Awaitable[None]]
ROOT = Path(__file__).resolve().parents[2]
LOAD_FACTOR = 1.25
ENTERPRISE_MODEL = "qwen2.5-72b-instruct"
CONSUMER_MODEL = "qwen2.5-3b-instruct"
DEFAULT_MODEL = "qwen2.5-7b-instruct"
# one made-up product per document, so each question retrieves its own chunk (its own prefix)
TOPICS = [
    "zorblax", "quimtrel", "fandovik", "plexaron", "trinquel", "vostrada",
    "mekalune", "durnspar", "oxilith", "brevacor", "sylmarin", "kettlewyn",
]  # fmt: skip


def report(title: str, lines: list[str]) -> str:
    """Print figures so `pytest -s` shows them; also returned for assertion messages."""
    text = "\n".join([f"\n== {title}", *(f"   {line}" for line in lines)])
    print(text)  # noqa: T201 - the acceptance asks for the figures in the test's output
    return text


@pytest.fixture
async def three_llms() -> AsyncIterator[list[str]]:
    """Three test LLM servers in this process; yields their base URLs (no /v1)."""
    async with (
        serve_testllm(Behaviour()) as one,
        serve_testllm(Behaviour()) as two,
        serve_testllm(Behaviour()) as three,
    ):
        yield [one, two, three]


@contextlib.asynccontextmanager
async def llm_process() -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A test LLM server in its own process (so it can be SIGKILLed); yields URL and process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "scripts/testllm.py",
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


def citations_of(*chunk_ids: str) -> list[Citation]:
    """Citations of these chunks, in this order, each with a quotable sentence."""
    return [
        Citation(
            index=i,
            document_id=chunk_id.split(":")[0],
            chunk_id=chunk_id,
            title=f"Doc {chunk_id}",
            text=f"The {chunk_id} setting controls how keys are rotated every day.",
            start=0,
            end=10,
            score=1.0,
            rank=i,
        )
        for i, chunk_id in enumerate(chunk_ids, start=1)
    ]


async def ask(llm: LLMClient, citations: list[Citation], question: str) -> str:
    """One streamed answer through the client, routed by the citations' prompt prefix."""
    parts = [
        delta
        async for delta in llm.stream(
            build_messages(question, citations),
            completion=Completion(model=DEFAULT_MODEL),
            max_tokens=256,
            temperature=0,
            affinity=affinity_key(citations),
        )
    ]
    return "".join(parts)


async def chat_requests(urls: list[str]) -> list[int]:
    """Each server's count of chat requests."""
    return [(await stats(url))["chat_requests"] for url in urls]


def llm_urls(urls: list[str]) -> str:
    return ",".join(f"{url}/v1" for url in urls)


# --------------------------------------------------------------------------- the client


async def test_same_prefix_goes_to_one_replica_and_prefixes_spread(
    three_llms: list[str], make_settings: MakeSettings, make_llm: Callable[[Settings], LLMClient]
) -> None:
    """8 calls with the same sources (different questions) all reach one replica, the one
    its rendezvous order puts first; 60 different source sets reach all three."""
    llm = make_llm(make_settings(llm_base_url=llm_urls(three_llms)))
    same = citations_of("doc-a:0", "doc-b:3", "doc-c:1")
    for i in range(8):
        await ask(llm, same, f"How are keys rotated? ({i})")
    affine = await chat_requests(three_llms)
    for i in range(60):
        await ask(llm, citations_of(f"doc-{i}:0", f"doc-{i}:1"), "How are keys rotated?")
    total = await chat_requests(three_llms)
    spread = [t - a for t, a in zip(total, affine, strict=True)]
    home = llm.router.order(affinity_key(same))[0]
    figures = report(
        "affinity",
        [
            f"same prefix, 8 sequential calls: per replica {affine} (home replica {home})",
            f"60 different prefixes, sequential: per replica {spread}",
        ],
    )
    assert affine == [8 if i == home else 0 for i in range(3)], figures
    assert sum(spread) == 60, figures
    assert min(spread) >= 5, figures  # each replica homes a share (expected 20; 5 is 4 sd off)


async def test_a_hot_prefix_is_capped_at_the_bounded_load(
    three_llms: list[str],
    make_settings: MakeSettings,
    make_llm: Callable[[Settings], LLMClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """30 concurrent calls with the SAME prefix, slowed so they overlap: no replica ever
    holds more than ceil(1.25 x (in flight) / 3) of them (checked at every admission by the
    router's counts, and at the peak by the servers' own in-flight gauges); the hot prefix
    spills from its home replica to the next ones in its rendezvous order."""
    calls = 30
    for url in three_llms:
        await control(url, token_latency_ms=30)
    llm = make_llm(make_settings(llm_base_url=llm_urls(three_llms)))
    hot = citations_of("doc-hot:0", "doc-hot:1")
    order = llm.router.order(affinity_key(hot))

    slots: list[Slot] = []
    acquire = llm.router.acquire

    async def recording(candidates: list[int]) -> Slot | None:
        slot = await acquire(candidates)
        if slot is not None:
            slots.append(slot)
        return slot

    monkeypatch.setattr(llm.router, "acquire", recording)
    peak_server = [0, 0, 0]
    peak_router = [0, 0, 0]
    done = asyncio.Event()

    async def sample() -> None:
        async with httpx.AsyncClient() as client:
            while not done.is_set():
                for i, url in enumerate(three_llms):
                    seen = (await client.get(f"{url}/_stats")).json()["chat_in_flight"]
                    peak_server[i] = max(peak_server[i], seen)
                counted = await llm.router.in_flight()
                peak_router[:] = [max(p, c) for p, c in zip(peak_router, counted, strict=True)]
                await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    answers = await asyncio.gather(
        *(ask(llm, hot, f"How are keys rotated? ({i})") for i in range(calls))
    )
    done.set()
    await sampler
    counts = await chat_requests(three_llms)
    peak_total = max(s.total for s in slots)
    bound = math.ceil(LOAD_FACTOR * peak_total / 3)
    over = [s for s in slots if s.load > math.ceil(LOAD_FACTOR * s.total / 3)]
    figures = report(
        f"bounded load: {calls} concurrent calls, one prefix, 3 replicas, c = {LOAD_FACTOR}",
        [
            f"rendezvous order of the prefix: {order}",
            f"calls per replica:              {counts}",
            f"max in flight per replica (router's Redis counts, at admission): "
            f"{[max((s.load for s in slots if s.index == i), default=0) for i in range(3)]}",
            f"max in flight per replica (router's Redis counts, sampled):      {peak_router}",
            f"max in flight per replica (servers' chat_in_flight, sampled):     {peak_server}",
            f"peak total in flight {peak_total}, mean {peak_total / 3:.1f}, "
            f"cap ceil({LOAD_FACTOR} x mean) = {bound}",
            f"admissions over ceil({LOAD_FACTOR} x in-flight / 3): {len(over)}",
            f"without the cap every call would be on replica {order[0]}: [{calls} on one]",
        ],
    )
    assert [bool(a) for a in answers] == [True] * calls, figures
    assert sum(counts) == calls, figures
    assert peak_total == calls, figures  # they did overlap
    assert over == [], figures
    assert all(s.cap == load_cap(s.total - 1, 3, LOAD_FACTOR) for s in slots), figures
    assert max(peak_server) <= bound, figures
    assert counts[order[0]] == max(counts), figures  # the home replica still leads
    assert min(counts) > 0, figures
    assert await llm.router.in_flight() == [0, 0, 0], figures  # every call released its slot


async def test_router_counts_are_shared_between_processes(
    redis: Redis, keys: Keys, make_settings: MakeSettings
) -> None:
    """Two routers (two worker processes) see each other's calls: the cap is fleet-wide,
    and a released call stops counting."""
    targets = ["http://a.test/v1", "http://b.test/v1", "http://c.test/v1"]
    first = Router(redis, keys, targets, load_factor=LOAD_FACTOR, lease_s=60)
    second = Router(redis, keys, targets, load_factor=LOAD_FACTOR, lease_s=60)
    order = first.order("hot")
    held = [await (first if i % 2 else second).acquire(order) for i in range(7)]
    counted = await first.in_flight()
    for slot in held:
        assert slot is not None
        await second.release(slot)
    # caps ceil(1.25 x k / 3) for k = 1..7: 1 1 2 2 3 3 3, so the walk fills home, next, last
    assert [counted[i] for i in order] == [3, 3, 1]
    assert await first.in_flight() == [0, 0, 0]


# --------------------------------------------------------------------------- jobs


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
            breaker_open_s=60,
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
