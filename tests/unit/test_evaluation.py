"""The deploy-gate evaluation on hand-made API responses: the metrics, failures as misses,
thresholds turned into exit codes, and the table and JSON report an operator reads."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import evaluation
from shared.cli import build_parser
from shared.evaluation import (
    DataError,
    EvalOptions,
    EvalQuestion,
    Thresholds,
    load_questions,
    run_async,
    score_response,
)
from shared.schemas.jobs import RagResponse

KEY = "rk_secret_test_key"
Outcome = dict[str, Any] | int | Exception


def question(
    qid: str = "q1",
    *,
    docs: tuple[str, ...] = ("good",),
    keywords: tuple[str, ...] = ("VLT-4031",),
    kind: str = "exact",
) -> EvalQuestion:
    """A question of the eval set."""
    return EvalQuestion(
        id=qid,
        question=f"question {qid}?",
        expected_doc_ids=list(docs),
        expected_keywords=list(keywords),
        kind=kind,  # type: ignore[arg-type]
    )


def rag(
    answer: str, *docs: str, texts: tuple[str, ...] = (), degraded: bool = False
) -> dict[str, Any]:
    """A `POST /v1/rag` body citing one chunk per document id, in rank order."""
    citations = [
        {
            "index": rank,
            "document_id": doc,
            "chunk_id": f"{doc}:{rank}",
            "title": doc,
            "text": texts[rank - 1] if rank <= len(texts) else "",
            "start": 0,
            "end": 0,
            "score": 1.0 / rank,
            "rank": rank,
        }
        for rank, doc in enumerate(docs, start=1)
    ]
    return {
        "job_id": "job_1",
        "answer": answer,
        "citations": citations,
        "degraded": degraded,
        "degraded_reason": "no_llm_configured" if degraded else None,
        "cached": False,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "cost_usd": 0.0,
    }


def scored(q: EvalQuestion, body: dict[str, Any], *, k: int = 5) -> evaluation.QuestionResult:
    """Score a hand-made response."""
    return score_response(q, RagResponse.model_validate(body), k=k, mrr_depth=10, latency_s=0.1)


def fake_ragq(
    outcomes: dict[str, Outcome],
    *,
    ready: int = 200,
    auth: int = 200,
    seen: list[dict[str, Any]] | None = None,
) -> httpx.MockTransport:
    """A stand-in for the API: answers each question (by its text) with the given outcome."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":
            return httpx.Response(ready, json={"status": "ready" if ready == 200 else "not_ready"})
        if request.headers.get("authorization") != f"Bearer {KEY}" or auth == 401:
            return httpx.Response(401, json={"title": "Unauthorized", "status": 401})
        if request.url.path == "/v1/documents":
            return httpx.Response(auth, json={"object": "list", "data": [], "has_more": False})
        body = json.loads(request.content)
        if seen is not None:
            seen.append(body)
        outcome = outcomes[body["question"]]
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, int):
            problem = {"title": "Timeout", "status": outcome, "detail": "still running"}
            return httpx.Response(outcome, json={**problem, "job_id": "job_x"})
        return httpx.Response(200, json=outcome)

    return httpx.MockTransport(handler)


def write_questions(path: Path, questions: list[EvalQuestion]) -> Path:
    """Write a JSONL question file."""
    path.write_text("".join(q.model_dump_json() + "\n" for q in questions), encoding="utf-8")
    return path


@pytest.fixture
def make_options(tmp_path: Path) -> Callable[..., EvalOptions]:
    """Options of a run against the fake API, writing its report into tmp_path."""

    def make(questions: list[EvalQuestion], **overrides: Any) -> EvalOptions:
        values: dict[str, Any] = {
            "url": "http://ragq.test",
            "key": KEY,
            "data": write_questions(tmp_path / "eval.jsonl", questions),
            "json_out": tmp_path / "report.json",
        }
        values.update(overrides)
        return EvalOptions(**values)

    return make


# --------------------------------------------------------------------------- metrics


def test_keywords_match_ignoring_case_and_white_space() -> None:
    """A keyword counts whatever its case or line breaks in the answer."""
    q = question(keywords=("vlt-4031", "14 days"))
    result = scored(q, rag("Error VLT-4031 [1]; kept for 14\n  DAYS [2].", "good"))
    assert result.keyword_hit
    assert result.keyword_fraction == 1.0


def test_partial_keywords_are_a_miss_with_the_fraction_reported() -> None:
    """An answer with one of two keywords is not a hit, and the report says half were found."""
    q = question(keywords=("vault-primary", "5 minutes"))
    result = scored(q, rag("The vault-primary rotation owns it [1].", "good"))
    assert not result.keyword_hit
    assert result.keyword_fraction == 0.5
    assert result.keywords_found == ["vault-primary"]


def test_keywords_in_the_cited_chunks_but_not_the_answer_are_told_apart() -> None:
    """A keyword the sources hold but the answer left out shows as 'in context', not a hit."""
    q = question(keywords=("VLT-4031",))
    body = rag("Rotate it [1].", "good", texts=("fails with VLT-4031 while pinned",))
    result = scored(q, body)
    assert not result.keyword_hit
    assert result.keywords_in_context


def test_reciprocal_rank_follows_the_rank_field() -> None:
    """MRR uses each citation's `rank`, not its position in the list."""
    body = rag("a", "other", "noise", "good")
    body["citations"].reverse()  # listed good, noise, other; ranks still 3, 2, 1
    result = scored(question(), body)
    assert result.reciprocal_rank == pytest.approx(1 / 3)
    assert [c.document_id for c in result.citations] == ["other", "noise", "good"]


def test_reciprocal_rank_is_zero_when_no_expected_document_is_cited() -> None:
    """A question whose documents never show up scores 0 on MRR and hit@k."""
    result = scored(question(), rag("a", "x", "y", "z"))
    assert result.reciprocal_rank == 0.0
    assert not result.hit_at_k


def test_hit_at_k_only_looks_at_the_first_k_ranks() -> None:
    """An expected document at rank 6 misses hit@5 but still counts for MRR@10."""
    result = scored(question(), rag("a", "a1", "a2", "a3", "a4", "a5", "good"))
    assert not result.hit_at_k
    assert result.reciprocal_rank == pytest.approx(1 / 6)


def test_precision_counts_chunks_not_distinct_documents() -> None:
    """Three chunks of the expected document among five give precision@5 = 0.6."""
    result = scored(question(), rag("a", "good", "x", "good", "y", "good", "good"))
    assert result.precision_at_k == pytest.approx(0.6)


def test_precision_divides_by_k_even_with_fewer_citations() -> None:
    """Two right chunks when five were asked for give precision@5 = 0.4, not 1.0."""
    result = scored(question(), rag("a", "good", "good"))
    assert result.precision_at_k == pytest.approx(0.4)


def test_multi_document_questions_report_recall() -> None:
    """A two-document question citing one of them is a hit@k with recall 0.5."""
    q = question(docs=("good", "also"), kind="multi")
    result = scored(q, rag("a", "x", "good"))
    assert result.hit_at_k
    assert result.recall_at_k == 0.5


# --------------------------------------------------------------------------- data file


def test_a_bad_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    """A question line missing a field names the file, the line and the field."""
    good = question().model_dump_json()
    path = tmp_path / "eval.jsonl"
    path.write_text(f'{good}\n\n{{"id": "q2", "question": "x?", "kind": "exact"}}\n')
    with pytest.raises(DataError, match=r"eval\.jsonl:3: .*expected_doc_ids"):
        load_questions(path)


def test_invalid_json_and_unknown_kinds_are_refused(tmp_path: Path) -> None:
    """Broken JSON or a kind outside exact/paraphrase/multi stops the run before it starts."""
    path = tmp_path / "eval.jsonl"
    path.write_text("{not json\n")
    with pytest.raises(DataError, match=r":1: .*Invalid JSON"):
        load_questions(path)
    bad_kind = question().model_dump() | {"kind": "fuzzy"}
    path.write_text(json.dumps(bad_kind) + "\n")
    with pytest.raises(DataError, match=r":1: .*kind"):
        load_questions(path)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    """Two questions with one id are refused, naming both lines."""
    path = write_questions(tmp_path / "eval.jsonl", [question("q1"), question("q1")])
    with pytest.raises(DataError, match=r":2: duplicate id 'q1' \(first on line 1\)"):
        load_questions(path)


# --------------------------------------------------------------------------- whole runs


async def test_every_question_is_asked_with_top_k_for_mrr_at_10(
    make_options: Callable[..., EvalOptions],
) -> None:
    """Questions go out with top_k = max(k, 10) and the request timeout, once each."""
    qs = [question("q1"), question("q2")]
    seen: list[dict[str, Any]] = []
    transport = fake_ragq({q.question: rag("VLT-4031", "good") for q in qs}, seen=seen)
    options = make_options(qs, request_timeout_s=30.0)
    assert await run_async(options, out=io.StringIO(), transport=transport) == 0
    assert sorted(b["question"] for b in seen) == ["question q1?", "question q2?"]
    assert {(b["top_k"], b["timeout"]) for b in seen} == {(10, 30.0)}


async def test_failed_requests_count_as_misses_and_are_listed(
    make_options: Callable[..., EvalOptions],
) -> None:
    """A 504 and a dropped connection are misses in every metric and named in the output."""
    qs = [question("q1"), question("q2"), question("q3"), question("q4")]
    outcomes: dict[str, Outcome] = {
        "question q1?": rag("VLT-4031 [1]", "good"),
        "question q2?": rag("VLT-4031 [1]", "good"),
        "question q3?": 504,
        "question q4?": httpx.ReadError("connection reset"),
    }
    out = io.StringIO()
    options = make_options(qs)
    assert await run_async(options, out=out, transport=fake_ragq(outcomes)) == 1
    assert options.json_out is not None
    report = json.loads(options.json_out.read_text())
    assert report["overall"]["failed"] == 2
    assert report["overall"]["answered"] == 2
    assert report["overall"]["keyword_hit_rate"] == 0.5
    assert report["overall"]["hit_at_k"] == 0.5
    by_id = {r["id"]: r for r in report["questions"]}
    assert by_id["q3"]["http_status"] == 504
    assert by_id["q3"]["error"].startswith("HTTP 504: Timeout")
    assert "ReadError" in by_id["q4"]["error"]
    assert "q3: HTTP 504" in out.getvalue()
    assert "q4: ReadError" in out.getvalue()


@pytest.mark.parametrize(
    ("thresholds", "expected"),
    [
        (Thresholds(keyword_hit_rate=0.75), 0),  # exactly at the threshold passes
        (Thresholds(keyword_hit_rate=0.8), 1),
        (Thresholds(keyword_hit_rate=0.5, hit_at_k=1.0), 0),
        (Thresholds(keyword_hit_rate=0.5, hit_at_k=1.0, mrr=0.9), 1),
        (Thresholds(keyword_hit_rate=0.5, precision_at_k=0.3), 1),
    ],
)
async def test_exit_code_follows_every_threshold(
    make_options: Callable[..., EvalOptions], thresholds: Thresholds, expected: int
) -> None:
    """Exit 0 only when every set threshold is met, 1 as soon as one is not."""
    qs = [question(f"q{i}") for i in range(4)]
    outcomes: dict[str, Outcome] = {q.question: rag("vlt-4031", "good") for q in qs[:3]}
    outcomes[qs[3].question] = rag("nothing", "x", "good")  # MRR 1/2, precision 1/5
    options = make_options(qs, thresholds=thresholds)
    out = io.StringIO()
    assert await run_async(options, out=out, transport=fake_ragq(outcomes)) == expected
    assert f"result: {'PASS' if expected == 0 else 'FAIL'} (exit {expected})" in out.getvalue()


async def test_unreachable_stack_is_a_usage_error(make_options: Callable[..., EvalOptions]) -> None:
    """A stack that does not answer exits 2 with a message naming the URL, not a traceback."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("All connection attempts failed", request=request)

    err = io.StringIO()
    code = await run_async(
        make_options([question()]),
        out=io.StringIO(),
        err=err,
        transport=httpx.MockTransport(refuse),
    )
    assert code == 2
    assert "cannot reach ragq at http://ragq.test" in err.getvalue()


async def test_a_refused_key_is_a_usage_error(make_options: Callable[..., EvalOptions]) -> None:
    """A wrong API key exits 2 before any question is asked, saying to check the key."""
    seen: list[dict[str, Any]] = []
    err = io.StringIO()
    options = make_options([question()], key="wrong")
    code = await run_async(options, out=io.StringIO(), err=err, transport=fake_ragq({}, seen=seen))
    assert code == 2
    assert "refused the API key" in err.getvalue()
    assert seen == []


async def test_a_stack_that_is_not_ready_is_a_usage_error(
    make_options: Callable[..., EvalOptions],
) -> None:
    """/readyz answering 503 (no worker) exits 2 instead of timing out every question."""
    err = io.StringIO()
    transport = fake_ragq({}, ready=503)
    code = await run_async(
        make_options([question()]), out=io.StringIO(), err=err, transport=transport
    )
    assert code == 2
    assert "not ready" in err.getvalue()


async def test_a_bad_data_file_is_a_usage_error(
    tmp_path: Path, make_options: Callable[..., EvalOptions]
) -> None:
    """A question file that does not validate exits 2 with its line number."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "q1"}\n')
    err = io.StringIO()
    options = make_options([question()], data=bad)
    assert await run_async(options, out=io.StringIO(), err=err, transport=fake_ragq({})) == 2
    assert "bad.jsonl:1:" in err.getvalue()


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


# --------------------------------------------------------------------------- command line


def test_ragq_eval_defaults_match_the_operator_contract() -> None:
    """`ragq eval` with no options targets the local API, the shipped set and 0.85."""
    args = build_parser().parse_args(["eval"])
    assert args.url == "http://127.0.0.1:8000"
    assert args.data == Path("data/deploy_eval.jsonl")
    assert args.threshold == 0.85
    assert (args.min_hit_at_k, args.min_mrr, args.min_precision) == (None, None, None)
    assert (args.top_k, args.concurrency, args.json_out) == (5, 4, "eval-report.json")


def test_ragq_eval_without_a_key_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --key or RAGQ_API_KEY the command says what is missing and exits 2."""
    from shared.cli import main

    monkeypatch.delenv("RAGQ_API_KEY", raising=False)
    assert main(["eval"]) == 2
    assert "pass --key or set RAGQ_API_KEY" in capsys.readouterr().err


def test_thresholds_outside_0_1_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """A threshold of 85 (meant as 85 %) is refused by the parser with exit 2."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["eval", "--threshold", "85"])
    assert exc.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err
