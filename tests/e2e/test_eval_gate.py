"""The CI deploy gate as CI runs it (`scripts/eval_gate.py`, a real stack in subprocesses):
an index whose texts are shuffled between documents must fail it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_REDIS_URL

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# hit@5 of the unshuffled corpus with the whole question set (measured with
# `python scripts/eval_gate.py`: 0.783); retrieval work should only raise it
UNSHUFFLED_HIT_AT_K = 0.78
MIN_HIT_AT_K = 0.5


async def test_gate_fails_an_index_with_shuffled_texts(tmp_path: Path, redis: Any) -> None:
    """With every document holding another one's text, the gate exits 1, its hit@k check
    fails, and hit@5 is far below what the intact corpus reaches."""
    report_path = tmp_path / "report.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "eval_gate.py"),
        "--shuffle-texts",
        "1",
        "--min-hit-at-k",
        str(MIN_HIT_AT_K),
        "--redis-url",
        TEST_REDIS_URL,
        "--json-out",
        str(report_path),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    output = f"stdout:\n{out.decode()}\nstderr:\n{err.decode()[-4000:]}"
    assert proc.returncode == 1, output
    report = json.loads(report_path.read_text())
    questions = (ROOT / "data" / "deploy_eval.jsonl").read_text().splitlines()
    assert report["overall"]["questions"] == sum(1 for q in questions if q.strip())
    assert report["overall"]["failed"] == 0, output
    checks = {c["metric"]: c for c in report["checks"]}
    assert checks["hit_at_k"]["passed"] is False
    assert report["overall"]["hit_at_k"] < UNSHUFFLED_HIT_AT_K / 2, output
    assert "hit@5" in out.decode()
    assert await redis.dbsize() == 0  # the gate flushed its Redis DB on the way out
