"""Observability across real processes: after one job, the API's and the worker's `/metrics`
carry exactly docs/API.md's metrics table; the job's request id runs through both processes'
JSON logs, which never hold the API key; and `ragq serve --workers 2` counts every process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from scripts.harness import POLL_S, ROOT, START_TIMEOUT_S, free_port
from tests.e2e.conftest import Stack, auth, finished
from tests.e2e.test_stack import DOC

pytestmark = pytest.mark.e2e

REQUEST_ID = "obs-trace-5"
QUESTION = "How do I rotate the signing key without breaking pinned consumers?"
LLM_SECRET = "sk-llm-secret-never-logged"
Family = tuple[str, frozenset[str]]  # type, label names


def contract() -> dict[str, Family]:
    """The metrics table of docs/API.md: name → (type, label names), parenthesised label
    values and trailing remarks left out."""
    section = (ROOT / "docs" / "API.md").read_text(encoding="utf-8").split("## Metrics", 1)[1]
    rows = re.findall(r"^\| `(ragq_\w+)` \| (\w+) \| (.*) \|$", section, flags=re.MULTILINE)
    return {
        name: (kind, frozenset(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", labels))))
        for name, kind, labels in rows
    }


def exported(text: str) -> dict[str, tuple[str, frozenset[str], dict[str, float]]]:
    """ragq's metric families with samples in a scrape (a process lists the families it
    never touches without any): name (counters with `_total`) → (type, label names, sample
    values keyed by `sample_name{labels}`)."""
    out = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("ragq_") or not family.samples:
            continue
        name = f"{family.name}_total" if family.type == "counter" else family.name
        labels = frozenset(k for s in family.samples for k in s.labels if k != "le")
        values = {_key(s.name, s.labels): s.value for s in family.samples}
        out[name] = (family.type, labels, values)
    return out


def _key(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def label_values(text: str, metric: str, label: str) -> set[str]:
    """Every value `label` takes in the samples of `metric` in a scrape."""
    return {
        s.labels[label]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == metric and label in s.labels
    }


async def _one_job(stack: Stack) -> tuple[str, dict[str, Any], str]:
    """The test LLM, a worker with its metrics port, the API; one document and one answered
    job. Returns the API key, the job and the worker's metrics URL."""
    port = free_port()
    stack.env["RAGQ_WORKER_METRICS_PORT"] = str(port)
    stack.env["RAGQ_LLM_API_KEY"] = LLM_SECRET
    await stack.start_llm()
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    await stack.index(key, DOC)
    async with httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60) as client:
        submitted = await client.post(
            "/v1/jobs", json={"question": QUESTION}, headers={"X-Request-ID": REQUEST_ID}
        )
        job = await finished(client, submitted.json()["id"])
    assert job["status"] == "completed", stack.log_tails()
    assert job["result"]["degraded"] is False, stack.log_tails()
    return key, job, f"http://127.0.0.1:{port}/metrics"


async def _scrape_when(url: str, sample: str, value: float) -> str:
    """The scrape of `url` once `sample` reaches `value` (or after 90 s): the worker counts
    a job just after the API can see it completed, in another process (a bounded poll)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            text = (await client.get(url)).text
            families = exported(text)
            seen = {k: v for _, _, values in families.values() for k, v in values.items()}
            if seen.get(sample) == value or loop.time() > deadline:
                return text
            await asyncio.sleep(POLL_S)


async def test_api_and_worker_export_exactly_the_contract_metrics(stack: Stack) -> None:
    """After one completed job, the API's and the worker's /metrics together carry every
    metric of docs/API.md's table, each with its type and exactly its labels, and no other
    ragq_ metric; requests are labelled by route template (one fixed label for unknown
    paths, the route's own for a body refused before routing); events that did not happen
    (rejections) are exported as zeroes."""
    _, job, worker_url = await _one_job(stack)
    finished = "{queue=interactive,status=completed}"
    worker = exported(await _scrape_when(worker_url, f"ragq_jobs_finished_total{finished}", 1))
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        unknown = await client.get("/no/such/route")
        too_big = await client.post(  # refused from Content-Length, before any routing
            "/v1/jobs", content=b" " * (2 << 20), headers={"Content-Type": "application/json"}
        )
        api_text = (await client.get("/metrics")).text
        elsewhere = await client.get(worker_url.replace("/metrics", "/"))
        posted = await client.post(worker_url)
    api = exported(api_text)
    table = contract()

    def found(name: str) -> set[Family]:
        return {(kind, labels) for kind, labels, _ in (p[name] for p in (api, worker) if name in p)}

    def value(source: dict[str, Any], sample: str) -> float | None:
        return next((v[sample] for _, _, v in source.values() if sample in v), None)

    routes = label_values(api_text, "ragq_http_requests_total", "route")
    model = job["result"]["model"]
    assert len(table) == 21
    assert {name: found(name) for name in table} == {name: {spec} for name, spec in table.items()}
    assert set(api) | set(worker) == set(table)
    assert value(api, "ragq_jobs_submitted_total{queue=interactive}") == 1
    assert value(api, "ragq_http_requests_total{method=POST,route=/v1/jobs,status=202}") == 1
    assert (unknown.status_code, too_big.status_code) == (404, 413)
    assert (elsewhere.status_code, posted.status_code) == (404, 405)
    assert value(api, "ragq_http_requests_total{method=GET,route=unmatched,status=404}") == 1
    assert value(api, "ragq_http_requests_total{method=POST,route=/v1/jobs,status=413}") == 1
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/documents/{document_id}"} <= routes
    assert not any(job["id"] in route or DOC["id"] in route for route in routes)
    assert {
        reason: value(api, f"ragq_admission_rejections_total{{reason={reason}}}")
        for reason in ("overloaded", "rate_limited", "concurrency", "budget")
    } == dict.fromkeys(("overloaded", "rate_limited", "concurrency", "budget"), 0.0)
    assert value(worker, f"ragq_llm_calls_total{{model={model},status=ok}}") == 1
    assert value(worker, f"ragq_llm_time_to_first_token_seconds_count{{model={model}}}") == 1
    completion_tokens = value(
        worker, f"ragq_llm_tokens_total{{direction=completion,model={model}}}"
    )
    assert completion_tokens == job["result"]["usage"]["completion_tokens"]
    assert value(worker, "ragq_job_stage_seconds_count{queue=interactive,stage=total}") == 1
    assert value(worker, "ragq_jobs_in_progress{queue=interactive}") == 0
    assert value(worker, "ragq_degraded_answers_total{reason=circuit_open}") == 0
    assert value(worker, "ragq_job_reruns_total{cause=worker_died}") == 0
    assert value(worker, "ragq_answer_grounding_total{grounded=true}") == 1
    assert value(worker, "ragq_answer_grounding_total{grounded=false}") == 0


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


async def test_request_id_and_llm_call_in_both_logs_and_never_a_key(stack: Stack) -> None:
    """One job's request id is on the API's `http.request` line (with the route template)
    and on the worker's `job.*` and `llm.call` lines (with tokens, latency, TTFT, cost); no
    line of either log holds the API key, the LLM key or, at info level, the question."""
    key, job, _ = await _one_job(stack)
    await stack.stop()  # flush both logs
    api_text = (stack.logs / "api.log").read_text()
    worker_text = (stack.logs / "worker.log").read_text()
    api = [line for line in _json_lines(stack.logs / "api.log") if line.get("request_id")]
    worker = [line for line in _json_lines(stack.logs / "worker.log") if line.get("request_id")]
    submit = [
        line for line in api if line["request_id"] == REQUEST_ID and line["event"] == "http.request"
    ]
    routes = {line["route"] for line in api if line["event"] == "http.request"}
    mine = [line for line in worker if line["request_id"] == REQUEST_ID]
    calls = [line for line in mine if line["event"] == "llm.call"]
    usage = job["result"]["usage"]
    assert [(s["method"], s["route"], s["status"]) for s in submit] == [("POST", "/v1/jobs", 202)]
    assert isinstance(submit[0]["latency_ms"], float)
    assert submit[0]["tenant"] == "acme"
    assert "/v1/jobs/{job_id}" in routes
    assert {line["event"] for line in mine} >= {"job.started", "llm.call", "job.completed"}
    assert all(line["job_id"] == job["id"] and line["tenant"] == "acme" for line in mine)
    assert len(calls) == 1
    assert {k: calls[0][k] for k in ("model", "status", "prompt_tokens", "completion_tokens")} == {
        "model": job["result"]["model"],
        "status": "ok",
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
    }
    assert (calls[0]["cached"], calls[0]["degraded"]) == (False, False)
    assert calls[0]["cost_usd"] == job["result"]["cost_usd"]
    assert calls[0]["latency_ms"] >= calls[0]["ttft_ms"] > 0
    assert key not in api_text
    assert key not in worker_text
    assert LLM_SECRET not in api_text + worker_text
    assert QUESTION not in api_text + worker_text


def _per_process(metrics_dir: Path, scratch: Path) -> dict[str, float]:
    """`/healthz` requests counted by each API process (pid → count), read from each
    process's own file of prometheus_client's multi-process directory."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = path.stem.removeprefix("counter_")
        alone = scratch / pid
        alone.mkdir(exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        counts[pid] = sum(
            s.value
            for family in registry.collect()
            for s in family.samples
            if s.name == "ragq_http_requests_total" and s.labels.get("route") == "/healthz"
        )
    return counts


async def test_multiprocess_api_metrics_count_every_process(stack: Stack, tmp_path: Path) -> None:
    """Under `ragq serve --workers 2` the API's /metrics counts the requests of both
    processes, whichever answers the scrape, and the metrics directory is removed at exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    await stack.spawn("api", "serve", "--port", str(port), "--workers", "2")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    metrics_dir: Path | None = None
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while metrics_dir is None:  # across the process boundary: poll readiness
            assert loop.time() < deadline, stack.log_tails()
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code in {200, 503}:  # no worker here
                    lines = _json_lines(stack.logs / "api.log")
                    found = [x["dir"] for x in lines if x["event"] == "api.metrics_multiprocess"]
                    metrics_dir = Path(found[0])
            await asyncio.sleep(POLL_S)
    scratch = tmp_path / "per-process"
    scratch.mkdir()
    sent = 0
    served_by: dict[str, float] = {}

    async def one() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as fresh:  # a new connection
            assert (await fresh.get("/healthz")).status_code == 200

    # which process accepts a connection is the kernel's choice: send until both have served
    while sum(1 for n in served_by.values() if n > 0) < 2 and loop.time() < deadline:
        await asyncio.gather(*(one() for _ in range(20)))
        sent += 20
        served_by = _per_process(metrics_dir, scratch)
    scrapes = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for _ in range(4):
            families = text_string_to_metric_families((await client.get("/metrics")).text)
            scrapes.append(
                sum(
                    s.value
                    for f in families
                    for s in f.samples
                    if s.name == "ragq_http_requests_total" and s.labels["route"] == "/healthz"
                )
            )
    await stack.stop()
    assert sum(1 for n in served_by.values() if n > 0) == 2, served_by
    assert sum(served_by.values()) == sent, served_by
    assert scrapes == [sent] * 4, served_by
    assert not metrics_dir.exists()
