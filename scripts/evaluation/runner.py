"""The run: every question through `POST /v1/rag` (after a preflight that fails fast),
scored, reported on stdout and as JSON; the exit code follows the thresholds."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
from pydantic import ValidationError

from scripts.evaluation.options import EvalOptions
from scripts.evaluation.questions import (
    DataError,
    EvalQuestion,
    load_questions,
    spread,
    validation_summary,
)
from scripts.evaluation.report import EXIT_USAGE, EvalReport, build_report, format_report
from scripts.evaluation.scoring import QuestionResult, failed_result, score_response
from shared.schemas.jobs import RagResponse

FOLLOW_WAIT_S = 30  # the API's longest `GET /v1/jobs/{id}?wait=`


class EvalSetupError(Exception):
    """The evaluation cannot run: ragq is not reachable, not ready, or refuses the key."""


def _problem(response: httpx.Response) -> str:
    """A one-line description of an error response."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        title = body.get("title") or ""
        detail = body.get("detail") or ""
        job = f" (job {body['job_id']})" if body.get("job_id") else ""
        return f"{title}: {detail}{job}".strip(": ")
    return str(body)[:200]


async def _preflight(client: httpx.AsyncClient, url: str) -> None:
    """Fail fast, with a clear message, when ragq is unreachable, not ready, or refuses the key."""
    try:
        ready = await client.get("/readyz")
    except httpx.HTTPError as exc:
        raise EvalSetupError(f"cannot reach ragq at {url}: {exc or type(exc).__name__}") from exc
    if ready.status_code != 200:
        raise EvalSetupError(
            f"ragq at {url} is not ready (GET /readyz answered {ready.status_code}: "
            f"{ready.text[:200]})"
        )
    try:
        probe = await client.get("/v1/documents", params={"limit": 1})
    except httpx.HTTPError as exc:
        raise EvalSetupError(f"cannot reach ragq at {url}: {exc or type(exc).__name__}") from exc
    if probe.status_code == 401:
        raise EvalSetupError(
            f"ragq at {url} refused the API key (401): check --key or RAGQ_API_KEY"
        )
    if probe.status_code != 200:
        raise EvalSetupError(
            f"ragq at {url} answered GET /v1/documents with {probe.status_code}: {_problem(probe)}"
        )


async def _ask(
    client: httpx.AsyncClient,
    slots: asyncio.Semaphore,
    question: EvalQuestion,
    options: EvalOptions,
) -> QuestionResult:
    """Ask one question (once: nothing is retried) and score it."""
    body = {
        "question": question.question,
        "top_k": options.request_top_k,
        "timeout": options.request_timeout_s,
    }
    if options.max_tokens is not None:
        body["max_tokens"] = options.max_tokens
    async with slots:
        started = time.perf_counter()
        try:
            response = await client.post("/v1/rag", json=body)
            job_id = _running_job(response)
            if job_id is not None and options.answer_timeout_s is not None:
                response = await _follow(client, job_id, started + options.answer_timeout_s)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            return failed_result(
                question, error, http_status=None, latency_s=time.perf_counter() - started
            )
        latency = time.perf_counter() - started
    if response.status_code != 200:
        error = f"HTTP {response.status_code}: {_problem(response)}"
        return failed_result(question, error, http_status=response.status_code, latency_s=latency)
    try:
        parsed = RagResponse.model_validate_json(response.content)
    except ValidationError as exc:
        error = f"response does not match the API contract: {validation_summary(exc)}"
        return failed_result(question, error[:500], http_status=200, latency_s=latency)
    return score_response(
        question, parsed, k=options.k, mrr_depth=options.mrr_depth, latency_s=latency
    )


def _running_job(response: httpx.Response) -> str | None:
    """The job id of a `504` from `POST /v1/rag`: the job is still running."""
    if response.status_code != 504:
        return None
    try:
        job_id = response.json().get("job_id")
    except ValueError:
        return None
    return job_id if isinstance(job_id, str) else None


async def _follow(client: httpx.AsyncClient, job_id: str, deadline: float) -> httpx.Response:
    """Long-poll the job until it is terminal or `deadline` (perf_counter) passes: a
    `POST /v1/rag`-shaped `200` for a completed job, else a problem response of its own."""
    while (left := deadline - time.perf_counter()) > 0:
        wait = max(1, min(FOLLOW_WAIT_S, int(left)))
        polled = await client.get(f"/v1/jobs/{job_id}", params={"wait": wait}, timeout=wait + 15)
        if polled.status_code != 200:
            return polled
        job = polled.json()
        if job["status"] == "completed":
            return httpx.Response(200, json={"job_id": job_id, **job["result"]})
        if job["status"] in ("failed", "cancelled"):
            problem = {"title": f"job {job['status']}", "detail": str(job.get("error"))}
            return httpx.Response(409, json={**problem, "job_id": job_id})
    problem = {"title": "Timeout", "detail": f"job {job_id} still running at the answer timeout"}
    return httpx.Response(504, json={**problem, "job_id": job_id})


async def evaluate(
    options: EvalOptions,
    questions: Sequence[EvalQuestion],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> EvalReport:
    """Ask every question through the public API, at most `options.concurrency` at a time.

    Raises `EvalSetupError` when ragq is unreachable, not ready, or refuses the key; a
    request that fails later is recorded as a failed question (a miss), not retried.
    """
    timeout = httpx.Timeout(
        connect=10.0, read=options.request_timeout_s + 15.0, write=30.0, pool=30.0
    )
    limits = httpx.Limits(max_connections=options.concurrency, max_keepalive_connections=None)
    started_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    started = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=options.url,
        headers={"Authorization": f"Bearer {options.key}"},
        timeout=timeout,
        limits=limits,
        transport=transport,
    ) as client:
        await _preflight(client, options.url)
        slots = asyncio.Semaphore(options.concurrency)
        results = await asyncio.gather(*(_ask(client, slots, q, options) for q in questions))
    return build_report(
        options, list(results), started_at=started_at, duration_s=time.perf_counter() - started
    )


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


async def run_async(
    options: EvalOptions,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Load the questions, evaluate, print the report, write the JSON; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        questions = spread(await asyncio.to_thread(load_questions, options.data), options.sample)
        report = await evaluate(options, questions, transport=transport)
    except (DataError, EvalSetupError) as exc:
        err.write(f"ragq eval: {exc}\n")
        return EXIT_USAGE
    out.write(format_report(report))
    if options.json_out is not None:
        try:
            await asyncio.to_thread(_write_json, options.json_out, report.to_json())
        except OSError as exc:
            err.write(f"ragq eval: cannot write the report to {options.json_out}: {exc}\n")
            return EXIT_USAGE
        out.write(f"report: {options.json_out}\n")
    out.flush()
    return report.exit_code


def run(options: EvalOptions) -> int:
    """`run_async` in a new event loop."""
    return asyncio.run(run_async(options))
