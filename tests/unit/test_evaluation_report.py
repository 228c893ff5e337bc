"""The reports an operator reads: the JSON report (config, checks, aggregates, one record
per question, never the key) and the printed table."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.evaluation import EvalOptions, Thresholds, run_async
from tests.unit.evaluation_fakes import KEY, Outcome, fake_ragq, options_factory, question, rag


@pytest.fixture
def make_options(tmp_path: Path) -> Callable[..., EvalOptions]:
    """Options of a run against the fake API, writing its report into tmp_path."""
    return options_factory(tmp_path)


async def test_json_report_has_config_aggregates_and_every_question(
    make_options: Callable[..., EvalOptions],
) -> None:
    """The JSON report holds the run's config, the checks, overall and per-kind figures
    and one record per question, and never the API key."""
    qs = [question("q1"), question("q2", kind="paraphrase"), question("q3", kind="multi")]
    outcomes: dict[str, Outcome] = {q.question: rag("VLT-4031", "good", degraded=True) for q in qs}
    options = make_options(qs)
    await run_async(options, out=io.StringIO(), transport=fake_ragq(outcomes))
    assert options.json_out is not None
    text = options.json_out.read_text()
    assert KEY not in text
    report = json.loads(text)
    assert set(report) >= {
        "version",
        "config",
        "passed",
        "exit_code",
        "checks",
        "overall",
        "by_kind",
        "questions",
    }
    assert report["config"]["k"] == 5
    assert report["config"]["request_top_k"] == 10
    assert report["checks"] == [
        {"metric": "keyword_hit_rate", "minimum": 0.85, "value": 1.0, "passed": True}
    ]
    assert set(report["by_kind"]) == {"exact", "paraphrase", "multi"}
    assert report["overall"]["degraded"] == 3
    assert set(report["overall"]) >= {
        "keyword_hit_rate",
        "hit_at_k",
        "mrr",
        "precision_at_k",
        "latency_mean_s",
        "latency_p95_s",
    }
    record = report["questions"][0]
    assert record["id"] == "q1"
    assert record["citations"][0] == {
        "rank": 1,
        "document_id": "good",
        "chunk_id": "good:1",
        "score": 1.0,
    }
    assert set(record) >= {
        "keyword_hit",
        "keyword_fraction",
        "hit_at_k",
        "reciprocal_rank",
        "precision_at_k",
        "latency_s",
        "degraded",
        "error",
    }


async def test_table_shows_overall_each_kind_and_the_thresholds(
    make_options: Callable[..., EvalOptions],
) -> None:
    """The printed table has aligned rows for overall and each kind, then PASS/FAIL lines."""
    qs = [question("q1"), question("q2", kind="paraphrase")]
    outcomes: dict[str, Outcome] = {
        qs[0].question: rag("VLT-4031", "good"),
        qs[1].question: rag("no", "x"),
    }
    options = make_options(qs, thresholds=Thresholds(keyword_hit_rate=0.85, hit_at_k=0.5))
    out = io.StringIO()
    await run_async(options, out=out, transport=fake_ragq(outcomes))
    lines = out.getvalue().splitlines()
    header = next(ln for ln in lines if ln.startswith("scope"))
    scopes = {"overall", "exact", "paraphrase"}
    rows = {ln.split()[0]: ln for ln in lines if ln.split() and ln.split()[0] in scopes}
    assert set(rows) == scopes
    for column in ("kw hit", "hit@5", "MRR@10", "P@5", "lat mean", "lat p95", "failed"):
        assert column in header
    assert len({len(header), *(len(r) for r in rows.values())}) == 1  # aligned columns
    assert rows["overall"].split()[4] == "0.500"
    assert any(ln.startswith("keyword hit rate") and ln.endswith("FAIL") for ln in lines)
    assert any(ln.startswith("hit@5") and ln.endswith("PASS") for ln in lines)
