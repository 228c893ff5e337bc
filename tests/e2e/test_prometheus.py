"""A real Prometheus server scrapes a running ragq (API + worker, test LLM) and evaluates
deploy/prometheus/alerts.yml; its query API gives back the contract's series from both
targets after one completed job."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from scripts.harness import free_port
from tests.e2e.conftest import Stack, auth, finished
from tests.e2e.test_stack import DOC
from tests.unit.promql import contract_metrics

PROMETHEUS_BIN = shutil.which("prometheus")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        PROMETHEUS_BIN is None,
        reason="the prometheus server is not installed (scripts/promtool.sh installs "
        "Debian's `prometheus` package)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
START_TIMEOUT_S = 90.0  # seconds for Prometheus to answer /-/ready (a loaded machine is slow)
SERIES_TIMEOUT_S = 90.0  # seconds for the scrapes and rule evaluations to show up
POLL_S = 0.25  # seconds between two queries while waiting for a scrape
STOP_TIMEOUT_S = 10.0
TARGET_LABELS = {"__name__", "job", "instance"}

# (query, what it proves) for one completed job: each must return at least one series
# whose value is > 0. `job` tells which target exported it.
EXPECTED = [
    ('up{job="ragq-api"} == 1', "the API target is scraped"),
    ('up{job="ragq-worker"} == 1', "the worker target is scraped"),
    (
        'ragq_http_requests_total{job="ragq-api",method="POST",route="/v1/jobs",status="202"}',
        "the API counts the submit by route template and status",
    ),
    (
        'ragq_http_request_duration_seconds_count{job="ragq-api",method="POST",route="/v1/jobs"}',
        "the API times the submit",
    ),
    (
        'ragq_jobs_submitted_total{job="ragq-api",queue="interactive"}',
        "the API counts the admitted job",
    ),
    (
        'ragq_jobs_finished_total{job="ragq-worker",queue="interactive",status="completed"}',
        "the worker counts the completed job",
    ),
    (
        'ragq_job_stage_seconds_count{job="ragq-worker",queue="interactive",stage="total"}',
        "the worker times the job's stages",
    ),
    ('ragq_llm_calls_total{job="ragq-worker",status="ok"}', "the worker counts the LLM call"),
    (
        'ragq_llm_tokens_total{job="ragq-worker",direction="completion"}',
        "the worker counts the tokens the LLM reported",
    ),
    (
        'ragq_llm_time_to_first_token_seconds_count{job="ragq-worker"}',
        "the worker times the first token",
    ),
    (
        'ragq_cache_requests_total{job="ragq-api",layer="answer",result="miss"}',
        "the API counts the answer-cache miss of a new question",
    ),
]


async def _running_stack(stack: Stack, worker_metrics_port: int) -> str:
    """Test LLM, a worker exporting on `worker_metrics_port`, the API and one indexed
    document; the API key of its tenant."""
    stack.env["RAGQ_WORKER_METRICS_PORT"] = str(worker_metrics_port)
    await stack.start_llm()
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    await stack.index(key, DOC)
    return key


@contextlib.asynccontextmanager
async def run_prometheus(tmp_path: Path, api: str, worker: str) -> AsyncIterator[httpx.AsyncClient]:
    """A Prometheus server on a free loopback port scraping `api` and `worker` (host:port)
    every second under prometheus.yml's job names, evaluating alerts.yml; a client of its
    HTTP API once it is ready. Its log is tmp_path/prometheus.log."""
    assert PROMETHEUS_BIN is not None
    config = {  # JSON is YAML: no YAML writer needed
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": "ragq-api", "static_configs": [{"targets": [api]}]},
            {"job_name": "ragq-worker", "static_configs": [{"targets": [worker]}]},
        ],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(json.dumps(config, indent=2))
    url = f"http://127.0.0.1:{free_port()}"
    with (tmp_path / "prometheus.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            PROMETHEUS_BIN,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={urlsplit(url).netloc}",
            stdout=log,
            stderr=log,
        )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            await _until_ready(client, proc, tmp_path / "prometheus.log")
            yield client
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _until_ready(
    client: httpx.AsyncClient, proc: asyncio.subprocess.Process, log: Path
) -> None:
    async with asyncio.timeout(START_TIMEOUT_S):
        # another process: poll its readiness endpoint
        while True:
            if proc.returncode is not None:
                tail = (await asyncio.to_thread(log.read_text))[-2000:]
                raise AssertionError(f"prometheus exited with {proc.returncode}: {tail}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/-/ready")).status_code == 200:
                    return
            await asyncio.sleep(POLL_S)


async def _query(prom: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    """The instant vector `expr` evaluates to now."""
    response = await prom.get("/api/v1/query", params={"query": expr})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


async def _missing(prom: httpx.AsyncClient) -> list[str]:
    """The EXPECTED checks with no series > 0 yet."""
    missing = []
    for expr, proves in EXPECTED:
        series = await _query(prom, expr)
        if not any(float(s["value"][1]) > 0 for s in series):
            missing.append(f"{proves}: {expr}")
    return missing


async def _exported_labels(prom: httpx.AsyncClient) -> dict[str, set[str]]:
    """Every ragq_ series name Prometheus holds from the two targets → its label names."""
    response = await prom.get(
        "/api/v1/series", params={"match[]": '{__name__=~"ragq_.+",job=~"ragq-api|ragq-worker"}'}
    )
    assert response.status_code == 200, response.text
    labels: dict[str, set[str]] = {}
    for series in response.json()["data"]:
        labels.setdefault(series["__name__"], set()).update(set(series) - TARGET_LABELS)
    return labels


def _contract_gaps(exported: dict[str, set[str]]) -> list[str]:
    """Where the scraped series differ from API.md's table: a metric absent, a label
    missing or extra, a ragq_ name the table does not have."""
    gaps = []
    allowed: set[str] = set()
    for name, metric in contract_metrics((ROOT / "docs" / "API.md").read_text()).items():
        expected = set(metric.labels)
        if metric.type == "histogram":
            series = f"{name}_bucket"
            expected.add("le")
            allowed |= {f"{name}_{s}" for s in ("bucket", "sum", "count", "created")}
        else:
            series = name
            allowed |= {name, name.removesuffix("_total") + "_created"}
        if series not in exported:
            gaps.append(f"{name}: not exported")
        elif exported[series] != expected:
            gaps.append(f"{name}: labels {sorted(exported[series])} != {sorted(expected)}")
    gaps += [f"{name}: not in API.md's table" for name in sorted(set(exported) - allowed)]
    return gaps


async def _rule_health(prom: httpx.AsyncClient) -> dict[str, str]:
    """Each rule of alerts.yml → its health once evaluated ("ok", "err: …"), or "pending"."""
    response = await prom.get("/api/v1/rules")
    assert response.status_code == 200, response.text
    health = {}
    for group in response.json()["data"]["groups"]:
        for rule in group["rules"]:
            evaluated = not rule.get("lastEvaluation", "").startswith("0001-")
            state = rule["health"] if rule["health"] != "err" else f"err: {rule.get('lastError')}"
            health[rule["name"]] = state if evaluated else "pending"
    return health


async def test_prometheus_scrapes_api_and_worker_and_evaluates_the_alerts(
    stack: Stack, tmp_path: Path
) -> None:
    """After one completed job, a real Prometheus scraping the API and the worker holds
    the contract's series from both (every metric of API.md's table with its labels),
    every rule of alerts.yml evaluates without error on them, and no alert condition holds
    on a healthy stack."""
    worker_port = free_port()
    key = await _running_stack(stack, worker_port)
    async with httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60) as client:
        submitted = await client.post("/v1/jobs", json={"question": "How to rotate a key?"})
        job = await finished(client, submitted.json()["id"])
        usage = await client.get("/v1/usage")  # sets today's spend gauge on the API
    api = urlsplit(stack.url).netloc
    async with run_prometheus(tmp_path, api, f"127.0.0.1:{worker_port}") as prom:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SERIES_TIMEOUT_S
        # scrapes and evaluations are periodic: poll until they show or the deadline passes
        while (missing := await _missing(prom)) or "pending" in (await _rule_health(prom)).values():
            if loop.time() > deadline:
                break
            await asyncio.sleep(POLL_S)
        gaps = _contract_gaps(await _exported_labels(prom))
        health = await _rule_health(prom)
        alert_exprs = {
            r["name"]: r["query"]
            for g in (await prom.get("/api/v1/rules")).json()["data"]["groups"]
            for r in g["rules"]
            if r["type"] == "alerting"
        }
        holding = {name: await _query(prom, expr) for name, expr in alert_exprs.items()}
    assert submitted.status_code == 202, stack.log_tails()
    assert job["status"] == "completed", stack.log_tails()
    assert usage.status_code == 200
    assert missing == [], stack.log_tails()
    assert gaps == []
    assert {name: h for name, h in health.items() if h != "ok"} == {}
    assert len(alert_exprs) >= 6
    assert {name: series for name, series in holding.items() if series} == {}
