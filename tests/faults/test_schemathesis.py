"""Schemathesis over `/openapi.json`, against a real `ragq serve` and `ragq worker` with the
test LLM, a key and indexed documents: every check it has (`--checks all`: server errors,
status codes, content types, headers and bodies against the document, schema-valid requests
accepted and schema-violating ones refused, unsupported methods and `Allow`, missing
headers, auth, use after delete, resources available after create), positive and negative
data, in all its phases (examples, coverage, fuzzing, stateful).

The run is bounded (a fixed seed, 20 examples per operation, one worker, no example
database) and so is each request (a long poll or an event stream may hold one; the test
LLM answers at once, so they end long before the timeout). The rules JSON Schema cannot
state are in tests/faults/schemathesis_hooks.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.faults.conftest import Figures

pytestmark = pytest.mark.timeout(900)

SEED = 20261202
MAX_EXAMPLES = 12  # per operation and phase: about 800 cases, a minute of the CI budget
REQUEST_TIMEOUT_S = 60  # over the longest wait a valid request may ask for (`?wait=30`)
RUN_TIMEOUT_S = 600.0
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
HOOKS = "tests.faults.schemathesis_hooks"
DOCUMENTS: list[dict[str, Any]] = [
    {
        "id": "key-rotation",
        "title": "Rotating signing keys",
        "text": "# Rotating signing keys\n\nRotate a signing key with vault keys rotate and keep "
        "both keys valid during the overlap window of seventy two hours.\n",
        "metadata": {"product": "vault"},
    },
    {
        "id": "pinned-consumers",
        "title": "Pinned consumers",
        "text": "A pinned consumer makes the rotation fail with error VLT-4031 until its team "
        "unpins it with the consumers command.\n",
    },
]
# every check of schemathesis 4 that applies to an OpenAPI document with one key
CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
}


async def _run(stack: Stack, key: str, folder: Path) -> tuple[int, str, Path, Path]:
    """Run the schemathesis CLI on the stack; its exit code, output, NDJSON report and the
    file of excused failures."""
    report, excused = folder / "report.ndjson", folder / "excused.txt"
    config = folder / "schemathesis.toml"
    config.write_text("[cache]\nenabled = false\n")  # no failures replayed from an earlier run
    env = {
        **os.environ,
        "PYTHONPATH": str(stack.cwd),  # the hooks module; the run itself is in `folder`
        "SCHEMATHESIS_HOOKS": HOOKS,
        "RAGQ_SCHEMATHESIS_EXCUSED": str(excused),
    }
    command = [
        str(SCHEMATHESIS),
        f"--config-file={config}",
        "run",
        f"{stack.url}/openapi.json",
        "--checks=all",
        f"--header=Authorization: Bearer {key}",
        f"--seed={SEED}",
        f"--max-examples={MAX_EXAMPLES}",
        f"--request-timeout={REQUEST_TIMEOUT_S}",
        "--workers=1",
        "--generation-database=none",
        "--no-color",
        "--report=ndjson",
        f"--report-ndjson-path={report}",
    ]
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=folder,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    (folder / "schemathesis.txt").write_bytes(out)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), report, excused


def _tally(report: Path) -> dict[str, Any]:
    """What the NDJSON report holds: operations, cases, requests by status, check results."""
    operations, cases, requests = 0, 0, 0
    statuses: Counter[int] = Counter()
    results: Counter[tuple[str, str]] = Counter()
    no_response, errors = 0, 0
    for line in report.read_text().splitlines():
        event = json.loads(line)
        if "LoadingFinished" in event:
            operations = event["LoadingFinished"]["statistic"]["operations"]["selected"]
        scenario = event.get("ScenarioFinished")
        if scenario is None:
            continue
        errors += scenario["status"] == "error"
        recorder = scenario["recorder"]
        cases += len(recorder.get("cases", {}))
        for interaction in recorder.get("interactions", {}).values():
            requests += 1
            response = interaction.get("response")
            if response is None:
                no_response += 1
            else:
                statuses[response["status_code"]] += 1
        for checks in recorder.get("checks", {}).values():
            results.update((check["name"], check["status"]) for check in checks)
    return {
        "operations": operations,
        "cases": cases,
        "requests": requests,
        "statuses": statuses,
        "results": results,
        "no_response": no_response,
        "errors": errors,
    }


async def test_schemathesis_all_checks_find_nothing(
    fault_stack: Stack, tmp_path: Path, figures: Figures
) -> None:
    """Every check schemathesis has passes on every operation: no failure, no 5xx, no
    request left without an answer."""
    await fault_stack.start_llm()
    await fault_stack.start_worker()
    await fault_stack.start_api()
    key = await fault_stack.create_key("acme")
    for document in DOCUMENTS:
        await fault_stack.index(key, document)

    code, out, report, excused = await _run(fault_stack, key, tmp_path)
    tally = _tally(report)
    failures = sum(n for (_, status), n in tally["results"].items() if status == "failure")
    server_errors = sum(n for status, n in tally["statuses"].items() if status >= 500)
    ran = {name for name, _ in tally["results"]}
    excused_n = len(excused.read_text().splitlines()) if excused.exists() else 0
    figures(
        "schemathesis",
        operations=tally["operations"],
        cases=tally["cases"],
        requests=tally["requests"],
        checks=len(ran),
        failures=failures,
        **{"5xx": server_errors},
        no_response=tally["no_response"],
        excused=excused_n,
    )
    summary = out[out.find("FAILURES") :][-6000:] if "FAILURES" in out else out[-3000:]
    assert (code, failures, server_errors) == (0, 0, 0), summary
    assert (tally["no_response"], tally["errors"]) == (0, 0), summary
    assert ran >= CHECKS, sorted(CHECKS - ran)
    assert tally["operations"] >= 18
