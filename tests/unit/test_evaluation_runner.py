"""Whole evaluation runs against a fake API: what is asked, failures counted as misses,
thresholds turned into exit codes, and set-up problems as usage errors."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.evaluation import EvalOptions, Thresholds, run_async
from tests.unit.evaluation_fakes import Outcome, fake_ragq, options_factory, question, rag


@pytest.fixture
def make_options(tmp_path: Path) -> Callable[..., EvalOptions]:
    """Options of a run against the fake API, writing its report into tmp_path."""
    return options_factory(tmp_path)


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
    assert all("max_tokens" not in b for b in seen)  # the API's default unless given


async def test_questions_carry_the_answer_budget_when_given(
    make_options: Callable[..., EvalOptions],
) -> None:
    """`--max-tokens N` goes out with every question."""
    qs = [question("q1"), question("q2")]
    seen: list[dict[str, Any]] = []
    transport = fake_ragq({q.question: rag("VLT-4031", "good") for q in qs}, seen=seen)
    options = make_options(qs, max_tokens=256)
    assert await run_async(options, out=io.StringIO(), transport=transport) == 0
    assert [b["max_tokens"] for b in seen] == [256, 256]


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


async def test_a_timed_out_question_is_followed_to_its_answer_with_an_answer_timeout(
    make_options: Callable[..., EvalOptions],
) -> None:
    """With `answer_timeout_s` a 504 is not a miss yet: the job is long-polled until it
    completes, and its result is scored like any answer; a job that fails is a miss."""
    qs = [question("q1"), question("q2")]
    running = {"id": "job_x", "status": "in_progress", "result": None}
    done = {"id": "job_x", "status": "completed", "result": rag("VLT-4031 [1]", "good")}
    failed = {"id": "job_x", "status": "failed", "error": {"type": "timeout", "message": "x"}}
    polls = [running, done, failed]
    outcomes: dict[str, Outcome] = {"question q1?": 504, "question q2?": 504}
    options = make_options(qs, concurrency=1, answer_timeout_s=600.0)
    transport = fake_ragq(outcomes, polls=polls)
    assert await run_async(options, out=io.StringIO(), transport=transport) == 1
    assert options.json_out is not None
    by_id = {r["id"]: r for r in json.loads(options.json_out.read_text())["questions"]}
    assert (by_id["q1"]["error"], by_id["q1"]["keyword_hit"]) == (None, True)
    assert by_id["q2"]["http_status"] == 409
    assert "failed" in by_id["q2"]["error"]
    assert [p["_wait"] for p in (running, done, failed)] == ["30", "30", "30"]


async def test_without_an_answer_timeout_a_504_is_not_followed(
    make_options: Callable[..., EvalOptions],
) -> None:
    polls = [{"id": "job_x", "status": "completed", "result": rag("VLT-4031 [1]", "good")}]
    options = make_options([question("q1")])
    transport = fake_ragq({"question q1?": 504}, polls=polls)
    assert await run_async(options, out=io.StringIO(), transport=transport) == 1
    assert len(polls) == 1  # never asked for
