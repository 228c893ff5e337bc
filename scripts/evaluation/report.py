"""The outcome of a run: thresholds checked into an exit code, the JSON report and the
table an operator reads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from scripts.evaluation.options import EvalOptions, Thresholds
from scripts.evaluation.questions import KINDS
from scripts.evaluation.scoring import Aggregate, QuestionResult, aggregate

EXIT_PASS = 0
EXIT_BELOW_THRESHOLD = 1
EXIT_USAGE = 2
REPORT_VERSION = 1


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
