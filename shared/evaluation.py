"""The deploy-gate evaluation: send every question of a JSONL set through `POST /v1/rag` and
score the answers (expected keywords) and the citations (hit@k, MRR, precision@k).

`ragq eval`, `scripts/deploy_eval.py` and `scripts/eval_gate.py` all run `run`/`run_async`.
Exit codes: 0 every threshold met, 1 below a threshold, 2 usage or connection error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shared.schemas.jobs import Citation, RagResponse

EXIT_PASS = 0
EXIT_BELOW_THRESHOLD = 1
EXIT_USAGE = 2

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_DATA = Path("data/deploy_eval.jsonl")
DEFAULT_JSON_OUT = Path("eval-report.json")
DEFAULT_K = 5
DEFAULT_MRR_DEPTH = 10
DEFAULT_CONCURRENCY = 4
DEFAULT_REQUEST_TIMEOUT_S = 60.0
DEFAULT_KEYWORD_THRESHOLD = 0.85
MAX_TOP_K = 50  # the API's limit on `top_k`
REPORT_VERSION = 1

Kind = Literal["exact", "paraphrase", "multi"]
KINDS: tuple[Kind, ...] = ("exact", "paraphrase", "multi")
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class DataError(Exception):
    """The question file cannot be used (unreadable, empty, or a line that does not validate)."""


class EvalSetupError(Exception):
    """The evaluation cannot run: ragq is not reachable, not ready, or refuses the key."""


class EvalQuestion(BaseModel):
    """One line of the question file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: NonEmpty
    question: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)
    ]
    expected_doc_ids: Annotated[list[NonEmpty], Field(min_length=1)]
    expected_keywords: Annotated[list[NonEmpty], Field(min_length=1)]
    kind: Kind


def _validation_summary(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return "; ".join(parts)


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read and validate a JSONL question file; blank lines are skipped.

    Raises `DataError` naming the file and line of the first problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    questions: list[EvalQuestion] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = EvalQuestion.model_validate_json(line)
        except ValidationError as exc:
            raise DataError(
                f"{path}:{lineno}: invalid question: {_validation_summary(exc)}"
            ) from exc
        if question.id in first_line:
            raise DataError(
                f"{path}:{lineno}: duplicate id {question.id!r} (first on line "
                f"{first_line[question.id]})"
            )
        first_line[question.id] = lineno
        questions.append(question)
    if not questions:
        raise DataError(f"{path}: no questions")
    return questions


# --------------------------------------------------------------------------- scoring


def normalise(text: str) -> str:
    """Case-folded text with every run of white space as one space, for keyword matching."""
    return " ".join(text.casefold().split())


def keywords_found(text: str, keywords: Sequence[str]) -> list[str]:
    """The keywords that occur in `text`, ignoring case and white-space differences."""
    haystack = normalise(text)
    return [kw for kw in keywords if normalise(kw) in haystack]


def ranked_document_ids(citations: Sequence[Citation]) -> list[str]:
    """The cited chunks' document ids in retrieval-rank order (rank 1 first)."""
    return [c.document_id for c in sorted(citations, key=lambda c: c.rank)]


def hit_at_k(ranked: Sequence[str], expected: Sequence[str], k: int) -> bool:
    """Whether any expected document is among the first `k` ranked chunks."""
    wanted = set(expected)
    return any(doc in wanted for doc in ranked[:k])


def recall_at_k(ranked: Sequence[str], expected: Sequence[str], k: int) -> float:
    """The fraction of the expected documents that appear among the first `k` ranked chunks."""
    wanted = set(expected)
    return len(wanted & set(ranked[:k])) / len(wanted)


def reciprocal_rank(ranked: Sequence[str], expected: Sequence[str], depth: int) -> float:
    """1 / position of the first chunk of an expected document within `depth`; 0 if none."""
    wanted = set(expected)
    for position, doc in enumerate(ranked[:depth], start=1):
        if doc in wanted:
            return 1.0 / position
    return 0.0


def precision_at_k(ranked: Sequence[str], expected: Sequence[str], k: int) -> float:
    """The fraction of the first `k` ranked chunks whose document is expected.

    Chunks are not deduplicated per document: the metric measures how much of the
    context handed to the model comes from the right documents, so three chunks of the
    expected document and two off-topic ones give 0.6. The divisor is always `k` (a
    service returning fewer chunks counts the empty slots as misses). Its ceiling is
    below 1 when the expected documents have fewer than `k` chunks, so compare it
    between runs rather than against 1.0.
    """
    wanted = set(expected)
    return sum(doc in wanted for doc in ranked[:k]) / k


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q`-th percentile (0 < q <= 100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class CitedChunk:
    """A citation as kept in the report (without its text)."""

    rank: int
    document_id: str
    chunk_id: str
    score: float


@dataclass(frozen=True)
class QuestionResult:
    """Everything measured for one question; a failed request scores zero everywhere."""

    id: str
    kind: str
    question: str
    expected_doc_ids: list[str]
    expected_keywords: list[str]
    ok: bool
    error: str | None
    http_status: int | None
    latency_s: float
    job_id: str | None = None
    answer: str | None = None
    citations: list[CitedChunk] = field(default_factory=list)
    keywords_found: list[str] = field(default_factory=list)
    keyword_fraction: float = 0.0
    keyword_hit: bool = False
    keywords_in_context: bool = False
    hit_at_k: bool = False
    recall_at_k: float = 0.0
    reciprocal_rank: float = 0.0
    precision_at_k: float = 0.0
    degraded: bool = False
    degraded_reason: str | None = None
    cached: bool = False


def failed_result(
    question: EvalQuestion, error: str, *, http_status: int | None, latency_s: float
) -> QuestionResult:
    """The record of a question whose request failed: a miss on every metric."""
    return QuestionResult(
        id=question.id,
        kind=question.kind,
        question=question.question,
        expected_doc_ids=list(question.expected_doc_ids),
        expected_keywords=list(question.expected_keywords),
        ok=False,
        error=error,
        http_status=http_status,
        latency_s=latency_s,
    )


def score_response(
    question: EvalQuestion,
    response: RagResponse,
    *,
    k: int,
    mrr_depth: int,
    latency_s: float,
) -> QuestionResult:
    """Score one answered question.

    `keyword_hit`: every expected keyword is in the answer text. `keywords_in_context`:
    every expected keyword is in the text of the chunks the answer was built from (all
    returned citations), which tells a retrieval miss from an answer that left it out.
    """
    ranked = ranked_document_ids(response.citations)
    expected = question.expected_doc_ids
    found = keywords_found(response.answer, question.expected_keywords)
    context = "\n".join(c.text for c in response.citations)
    in_context = keywords_found(context, question.expected_keywords)
    return QuestionResult(
        id=question.id,
        kind=question.kind,
        question=question.question,
        expected_doc_ids=list(expected),
        expected_keywords=list(question.expected_keywords),
        ok=True,
        error=None,
        http_status=200,
        latency_s=latency_s,
        job_id=response.job_id,
        answer=response.answer,
        citations=[
            CitedChunk(rank=c.rank, document_id=c.document_id, chunk_id=c.chunk_id, score=c.score)
            for c in sorted(response.citations, key=lambda c: c.rank)
        ],
        keywords_found=found,
        keyword_fraction=len(found) / len(question.expected_keywords),
        keyword_hit=len(found) == len(question.expected_keywords),
        keywords_in_context=len(in_context) == len(question.expected_keywords),
        hit_at_k=hit_at_k(ranked, expected, k),
        recall_at_k=recall_at_k(ranked, expected, k),
        reciprocal_rank=reciprocal_rank(ranked, expected, mrr_depth),
        precision_at_k=precision_at_k(ranked, expected, k),
        degraded=response.degraded,
        degraded_reason=response.degraded_reason,
        cached=response.cached,
    )


@dataclass(frozen=True)
class Aggregate:
    """Means over a set of questions (failures count as misses); latency over answered ones."""

    questions: int
    answered: int
    failed: int
    degraded: int
    cached: int
    keyword_hit_rate: float
    keyword_fraction: float
    keywords_in_context_rate: float
    hit_at_k: float
    recall_at_k: float
    mrr: float
    precision_at_k: float
    latency_mean_s: float | None
    latency_p95_s: float | None


def aggregate(results: Sequence[QuestionResult]) -> Aggregate:
    """Aggregate per-question results."""
    n = len(results)

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    latencies = [r.latency_s for r in results if r.ok]
    return Aggregate(
        questions=n,
        answered=len(latencies),
        failed=sum(not r.ok for r in results),
        degraded=sum(r.degraded for r in results),
        cached=sum(r.cached for r in results),
        keyword_hit_rate=mean([float(r.keyword_hit) for r in results]),
        keyword_fraction=mean([r.keyword_fraction for r in results]),
        keywords_in_context_rate=mean([float(r.keywords_in_context) for r in results]),
        hit_at_k=mean([float(r.hit_at_k) for r in results]),
        recall_at_k=mean([r.recall_at_k for r in results]),
        mrr=mean([r.reciprocal_rank for r in results]),
        precision_at_k=mean([r.precision_at_k for r in results]),
        latency_mean_s=mean(latencies) if latencies else None,
        latency_p95_s=percentile(latencies, 95),
    )


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Thresholds:
    """Minimum values of the overall metrics; None = not checked."""

    keyword_hit_rate: float | None = DEFAULT_KEYWORD_THRESHOLD
    hit_at_k: float | None = None
    mrr: float | None = None
    precision_at_k: float | None = None


@dataclass(frozen=True)
class Check:
    """One threshold compared with its overall value."""

    metric: str
    minimum: float
    value: float
    passed: bool


def check_thresholds(overall: Aggregate, thresholds: Thresholds) -> list[Check]:
    """Every configured threshold against the overall aggregate."""
    checks = []
    for f in dataclasses.fields(thresholds):
        minimum: float | None = getattr(thresholds, f.name)
        if minimum is None:
            continue
        value: float = getattr(overall, f.name)
        checks.append(Check(metric=f.name, minimum=minimum, value=value, passed=value >= minimum))
    return checks


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and how.

    Each question is asked with `top_k = max(k, mrr_depth)` so that MRR can look down to
    `mrr_depth` (citations are at most `top_k`); hit@k, recall@k and precision@k only look at
    the first `k` ranks. The answer is therefore generated from `max(k, mrr_depth)` chunks:
    pass `mrr_depth=k` to judge exactly the answer a client asking with `top_k=k` gets (MRR
    is then MRR@k).
    """

    url: str
    key: str
    data: Path = DEFAULT_DATA
    k: int = DEFAULT_K
    mrr_depth: int = DEFAULT_MRR_DEPTH
    concurrency: int = DEFAULT_CONCURRENCY
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    thresholds: Thresholds = Thresholds()
    json_out: Path | None = DEFAULT_JSON_OUT

    @property
    def request_top_k(self) -> int:
        """The `top_k` sent with every question."""
        return max(self.k, self.mrr_depth)


@dataclass(frozen=True)
class EvalReport:
    """The outcome of one evaluation run."""

    options: EvalOptions
    started_at: str
    duration_s: float
    results: list[QuestionResult]
    overall: Aggregate
    by_kind: dict[str, Aggregate]
    checks: list[Check]

    @property
    def passed(self) -> bool:
        """Whether every threshold is met."""
        return all(c.passed for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when every threshold is met, else 1."""
        return EXIT_PASS if self.passed else EXIT_BELOW_THRESHOLD

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report (never contains the API key)."""
        o = self.options
        return {
            "version": REPORT_VERSION,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "config": {
                "url": o.url,
                "data": str(o.data),
                "k": o.k,
                "mrr_depth": o.mrr_depth,
                "request_top_k": o.request_top_k,
                "concurrency": o.concurrency,
                "request_timeout_s": o.request_timeout_s,
                "thresholds": dataclasses.asdict(o.thresholds),
            },
            "passed": self.passed,
            "exit_code": self.exit_code,
            "checks": [dataclasses.asdict(c) for c in self.checks],
            "overall": dataclasses.asdict(self.overall),
            "by_kind": {kind: dataclasses.asdict(a) for kind, a in self.by_kind.items()},
            "questions": [dataclasses.asdict(r) for r in self.results],
        }


def build_report(
    options: EvalOptions, results: list[QuestionResult], *, started_at: str, duration_s: float
) -> EvalReport:
    """Aggregate the results overall and per kind, and check the thresholds."""
    overall = aggregate(results)
    present = [k for k in KINDS if any(r.kind == k for r in results)]
    by_kind: dict[str, Aggregate] = {
        kind: aggregate([r for r in results if r.kind == kind]) for kind in present
    }
    return EvalReport(
        options=options,
        started_at=started_at,
        duration_s=duration_s,
        results=results,
        overall=overall,
        by_kind=by_kind,
        checks=check_thresholds(overall, options.thresholds),
    )


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
    async with slots:
        started = time.perf_counter()
        try:
            response = await client.post("/v1/rag", json=body)
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
        error = f"response does not match the API contract: {_validation_summary(exc)}"
        return failed_result(question, error[:500], http_status=200, latency_s=latency)
    return score_response(
        question, parsed, k=options.k, mrr_depth=options.mrr_depth, latency_s=latency
    )


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


# --------------------------------------------------------------------------- output


_COLUMNS = (
    ("n", "questions", "d"),
    ("failed", "failed", "d"),
    ("degraded", "degraded", "d"),
    ("kw hit", "keyword_hit_rate", ".3f"),
    ("kw frac", "keyword_fraction", ".3f"),
    ("kw in ctx", "keywords_in_context_rate", ".3f"),
    ("hit@{k}", "hit_at_k", ".3f"),
    ("recall@{k}", "recall_at_k", ".3f"),
    ("MRR@{d}", "mrr", ".3f"),
    ("P@{k}", "precision_at_k", ".3f"),
    ("lat mean", "latency_mean_s", "s"),
    ("lat p95", "latency_p95_s", "s"),
)
_METRIC_LABELS = {
    "keyword_hit_rate": "keyword hit rate",
    "hit_at_k": "hit@{k}",
    "mrr": "MRR@{d}",
    "precision_at_k": "precision@{k}",
}


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "s":
        return f"{value:.2f}s"
    return format(value, fmt)


def _table(rows: list[list[str]]) -> list[str]:
    """Aligned columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def format_report(report: EvalReport) -> str:
    """The human-readable report: metrics overall and per kind, thresholds, failed requests."""
    o = report.options
    names = {"k": o.k, "d": o.mrr_depth}
    lines = [
        f"ragq eval: {report.overall.questions} questions from {o.data} against {o.url} "
        f"(top_k={o.request_top_k} asked, k={o.k}, {report.duration_s:.1f}s)",
        "",
    ]
    header = ["scope", *(label.format(**names) for label, _, _ in _COLUMNS)]
    rows = [header]
    for scope, agg in [("overall", report.overall), *report.by_kind.items()]:
        rows.append([scope, *(_cell(getattr(agg, attr), fmt) for _, attr, fmt in _COLUMNS)])
    lines += _table(rows)
    lines.append("")
    if report.checks:
        check_rows = [["threshold", "min", "value", "result"]]
        for c in report.checks:
            label = _METRIC_LABELS[c.metric].format(**names)
            result = "PASS" if c.passed else "FAIL"
            check_rows.append([label, f"{c.minimum:.3f}", f"{c.value:.3f}", result])
        lines += _table(check_rows)
    else:
        lines.append("no thresholds checked")
    failures = [r for r in report.results if not r.ok]
    if failures:
        lines += ["", f"failed requests ({len(failures)}, counted as misses):"]
        lines += [f"  {r.id}: {r.error}" for r in failures]
    verdict = "PASS" if report.passed else "FAIL"
    lines += ["", f"result: {verdict} (exit {report.exit_code})"]
    return "\n".join(lines) + "\n"


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
        questions = await asyncio.to_thread(load_questions, options.data)
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


# --------------------------------------------------------------------------- command line


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _int_in(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {text}")
        return value

    return parse


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1.0 <= value <= 120.0:
        raise argparse.ArgumentTypeError(f"must be between 1 and 120 seconds, got {text}")
    return value


def add_eval_arguments(parser: argparse.ArgumentParser, *, target: bool = True) -> None:
    """The evaluation's options; `target=False` leaves out --url/--key (the gate sets them)."""
    if target:
        parser.add_argument("--url", default=DEFAULT_URL, help="ragq base URL (%(default)s)")
        parser.add_argument("--key", help="API key (default: $RAGQ_API_KEY)")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="question set, JSONL (%(default)s)"
    )
    parser.add_argument(
        "--threshold",
        type=_fraction,
        default=DEFAULT_KEYWORD_THRESHOLD,
        help="minimum keyword hit rate (%(default)s)",
    )
    parser.add_argument("--min-hit-at-k", type=_fraction, help="minimum hit@k (not checked)")
    parser.add_argument("--min-mrr", type=_fraction, help="minimum MRR (not checked)")
    parser.add_argument("--min-precision", type=_fraction, help="minimum precision@k (not checked)")
    parser.add_argument(
        "--top-k",
        type=_int_in(1, MAX_TOP_K),
        default=DEFAULT_K,
        help="k of hit@k, recall@k and precision@k (%(default)s)",
    )
    parser.add_argument(
        "--mrr-depth",
        type=_int_in(1, MAX_TOP_K),
        default=DEFAULT_MRR_DEPTH,
        help="MRR looks this deep; questions are asked with top_k=max(k, depth) (%(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=_int_in(1, 256),
        default=DEFAULT_CONCURRENCY,
        help="questions in flight at once (%(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_REQUEST_TIMEOUT_S,
        help="the `timeout` of each POST /v1/rag, seconds (%(default)s)",
    )
    parser.add_argument(
        "--json-out",
        default=str(DEFAULT_JSON_OUT),
        help="machine-readable report; empty string = none (%(default)s)",
    )


def options_from_args(args: argparse.Namespace, *, url: str, key: str) -> EvalOptions:
    """Evaluation options from parsed `add_eval_arguments` options."""
    return EvalOptions(
        url=url,
        key=key,
        data=args.data,
        k=args.top_k,
        mrr_depth=args.mrr_depth,
        concurrency=args.concurrency,
        request_timeout_s=args.timeout,
        thresholds=Thresholds(
            keyword_hit_rate=args.threshold,
            hit_at_k=args.min_hit_at_k,
            mrr=args.min_mrr,
            precision_at_k=args.min_precision,
        ),
        json_out=Path(args.json_out) if args.json_out else None,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """`ragq eval` / `scripts/deploy_eval.py`: options from the command line, then `run`."""
    key = args.key or os.environ.get("RAGQ_API_KEY")
    if not key:
        sys.stderr.write("ragq eval: an API key is needed: pass --key or set RAGQ_API_KEY\n")
        return EXIT_USAGE
    return run(options_from_args(args, url=args.url, key=key))
