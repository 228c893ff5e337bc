"""Hostile input against a real `ragq serve` (and worker) over raw sockets: every case of
the table (tests/faults/hostile_*.py) gets the answer docs/API.md gives it — never a 5xx,
never a hang, never a traceback in the API's or the worker's log — and the API still
serves a normal request after each one."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.conftest import Stack, auth
from tests.faults.conftest import Figures
from tests.faults.hostile_cases import Case, body_cases
from tests.faults.hostile_fields import field_cases
from tests.faults.hostile_paths import PATH_CASES
from tests.faults.hostile_raw import RAW_CASES
from tests.faults.rawhttp import Reply, exchange, wire

CASES: list[Case] = body_cases() + field_cases() + RAW_CASES + PATH_CASES
LANES = 4  # cases in flight at once, each on a connection of its own
CLIENT_CLOSED = 499  # how the API logs a request whose client hung up (nginx's status)
PROBLEM_BASE = "https://ragq.dev/problems/"
PROBLEM_TYPES = {
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    431: "headers-too-large",
}


def verdict(case: Case, reply: Reply) -> str | None:
    """Why the reply is not the answer the case must get (None: it is)."""
    if case.shape == "hangup":
        return None
    if reply.hung:
        return "no answer within the hang guard"
    if reply.status is None:
        return "the connection closed with no answer"
    got = f"{reply.status} {reply.headers.get('content-type', '')} {reply.body[:200]!r}"
    if reply.status != case.expect:
        return f"expected {case.expect}, got {got}"
    if case.shape in ("problem", "openai"):
        try:
            body: Any = json.loads(reply.body)
        except ValueError:
            return f"not JSON: {got}"
        if case.shape == "openai":
            error = body.get("error") if isinstance(body, dict) else None
            ok = reply.headers.get("content-type") == "application/json" and isinstance(error, dict)
            return None if ok and "type" in (error or {}) else f"not an OpenAI error: {got}"
        shaped = (
            reply.headers.get("content-type") == "application/problem+json"
            and body.get("status") == case.expect
            and body.get("type") == PROBLEM_BASE + PROBLEM_TYPES[case.expect]
        )
        return None if shaped else f"not the problem it must be: {got}"
    return None


def log_lines(path: Path, start: int) -> list[tuple[str, dict[str, Any]]]:
    """A process's log after byte `start`: each line with its JSON fields (if it has any)."""
    with path.open("rb") as log:
        log.seek(start)
        text = log.read().decode(errors="replace")
    lines = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {}
        lines.append((line, entry if isinstance(entry, dict) else {}))
    return lines


def access_status(entry: dict[str, Any]) -> int | None:
    """The status of an access-log line (`http.request`), else None."""
    status = entry.get("status") if entry.get("event") == "http.request" else None
    return status if isinstance(status, int) else None


def log_faults(lines: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Lines that show a fault: a traceback, or a request answered (or that would have
    been, had the client stayed) with a 5xx."""
    return [
        line[:600]
        for line, entry in lines
        if "Traceback" in line or "exception" in entry or (access_status(entry) or 0) >= 500
    ]


async def finished_job(client: httpx.AsyncClient) -> tuple[str, int]:
    """A completed job and its terminal event's number."""
    submitted = await client.post("/v1/jobs", json={"question": "How is a key rotated?"})
    assert submitted.status_code == 202, submitted.text
    job_id = str(submitted.json()["id"])
    await settled(client, job_id)
    events = (await client.get(f"/v1/jobs/{job_id}/events")).text
    ids = [int(line[3:]) for line in events.splitlines() if line.startswith("id:")]
    return job_id, ids[-1]


async def settled(client: httpx.AsyncClient, job_id: str) -> str:
    """A job's status once it is terminal (the long poll is bounded by the test's timeout)."""
    while (status := (await client.get(f"/v1/jobs/{job_id}?wait=30")).json()["status"]) in (
        "queued",
        "in_progress",
    ):
        pass
    return str(status)


async def indexed(client: httpx.AsyncClient, document_id: str) -> str:
    """A document's status once the worker has indexed it or failed to."""
    status = "queued"
    while status in ("queued", "indexing"):  # the worker's progress: no event to await
        await asyncio.sleep(0.05)
        status = (await client.get(f"/v1/documents/{document_id}")).json()["status"]
    return str(status)


def created(reply: Reply) -> tuple[str, str] | None:
    """The object (`job` or `document`) and id an accepted 202 created."""
    if reply.status != 202:
        return None
    body = json.loads(reply.body)
    return str(body["object"]), str(body["id"])


@pytest.mark.timeout(300)
async def test_hostile_requests_get_their_documented_answers(
    fault_stack: Stack, figures: Figures
) -> None:
    """Every hostile request gets its documented 4xx (or its valid answer, whose job
    completes and whose document is indexed), with no 5xx, no hang and no traceback in the
    API's or the worker's log, and the API serves an ordinary request after each one."""
    await fault_stack.start_llm()
    await fault_stack.start_worker()
    url = urlsplit(await fault_stack.start_api())
    key = await fault_stack.create_key("acme")
    assert fault_stack.logs is not None
    logs = {name: fault_stack.logs / f"{name}.log" for name in ("api", "worker")}
    start = {name: path.stat().st_size for name, path in logs.items()}  # past start-up
    failures: list[str] = []
    made: dict[str, str] = {}  # what the accepted requests created: id → case
    counts = dict.fromkeys(("5xx", "hangs", "unanswered", "refused_by_the_http_server"), 0)
    async with httpx.AsyncClient(base_url=fault_stack.url, headers=auth(key), timeout=60) as api:
        job_id, last = await finished_job(api)
        fill = {b"{job}": job_id.encode(), b"{last}": str(last).encode()}
        lanes = asyncio.Semaphore(LANES)

        async def run(case: Case) -> None:
            async with lanes:
                request = wire(case, key, fill)
                reply = await exchange(url.hostname or "", url.port or 80, request, case)
                after = await api.get("/v1/usage")
            counts["5xx"] += int(reply.status is not None and reply.status >= 500)
            counts["hangs"] += int(reply.hung)
            counts["unanswered"] += int(reply.status is None and case.shape != "hangup")
            counts["refused_by_the_http_server"] += int(case.shape == "server")
            if (why := verdict(case, reply)) is not None:
                failures.append(f"{case.name}: {why}")
            elif case.shape == "accepted" and (new := created(reply)) is not None:
                made[f"{new[0]} {new[1]}"] = case.name
            if after.status_code != 200:
                failures.append(f"{case.name}: the next request got {after.status_code}")

        await asyncio.gather(*(run(case) for case in CASES))
        for made_id, name in made.items():
            kind, _, object_id = made_id.partition(" ")
            if kind == "job" and (status := await settled(api, object_id)) != "completed":
                failures.append(f"{name}: its job ended {status}")
            if kind == "document" and (status := await indexed(api, object_id)) != "indexed":
                failures.append(f"{name}: its document ended {status}")
    lines = {name: log_lines(path, start[name]) for name, path in logs.items()}
    faults = {name: log_faults(process_lines) for name, process_lines in lines.items()}
    # each hang-up is logged as such on its route (and so is a body the server could not
    # parse past its start: the server answers it, the app sees the client gone)
    hangups = Counter(e["path"] for _, e in lines["api"] if access_status(e) == CLIENT_CLOSED)
    hung_up = Counter(case.target.decode() for case in CASES if case.shape == "hangup")
    figures(
        "hostile input",
        cases=len(CASES),
        **counts,
        accepted_and_processed=len(made),
        client_hangups_logged_499=hangups.total(),
        api_log_faults=len(faults["api"]),
        worker_log_faults=len(faults["worker"]),
    )
    assert failures == [], "\n".join(failures)
    assert hung_up - hangups == Counter()
    assert faults == {"api": [], "worker": []}, "\n".join(faults["api"] + faults["worker"])
