"""deploy/prometheus and deploy/grafana against docs/API.md's metrics table (the contract):
every PromQL expression of the dashboard and of the alert rules names only contract metrics,
their labels and listed label values, Prometheus's `up` and this project's own recording
rules, and the dashboard covers the whole table. The checker is tests/unit/promql.py."""

from __future__ import annotations

import pytest

from tests.unit.deployfiles import dashboard_exprs, records, rules
from tests.unit.promql import Metric, parse_promql, problems


def test_contract_table_is_read(metrics: dict[str, Metric]) -> None:
    """The table parser finds every row, types and label values (so the checks below are
    not vacuous)."""
    jobs_finished = metrics["ragq_jobs_finished_total"]
    assert len(metrics) >= 17
    assert {m.type for m in metrics.values()} == {"counter", "gauge", "histogram"}
    assert jobs_finished.labels == {
        "queue": None,
        "status": frozenset({"completed", "failed", "cancelled"}),
    }


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum by (route) (rate(ragq_http_requests_total{status=~"5.."}[5m]))', []),
        ("rate(ragq_http_request_total[5m])", ["unknown metric 'ragq_http_request_total'"]),
        ("ragq_queue_depth_bucket", ["unknown metric 'ragq_queue_depth_bucket'"]),
        (
            'ragq_job_stage_seconds_count{stage="wait"}',
            ["ragq_job_stage_seconds_count: stage='wait' not listed"],
        ),
        ('ragq_queue_depth{tenant="acme"}', ["ragq_queue_depth: unknown label 'tenant'"]),
        ("sum by (tenant) (ragq_queue_depth)", ["grouping by unknown label 'tenant'"]),
        ('up{job="ragq-wrker"}', ["up: job='ragq-wrker' not listed"]),
        ("sum by (le) (rate(ragq_llm_tokens_total[5m]))", ["grouping by unknown label 'le'"]),
        ("histogram_quantile(0.9, sum by (le) (rate(ragq_llm_latency_seconds_bucket[$w])))", []),
        ('max(ragq:daily_budget_usd{scope="service"}) > bool 0.8 * inf', []),
    ],
)
def test_checker_flags_what_is_outside_the_contract(
    metrics: dict[str, Metric], expr: str, expected: list[str]
) -> None:
    """The PromQL checker tells functions, keywords and labels from metric names, and
    reports unknown names, labels and listed label values."""
    assert problems(expr, metrics, records()) == expected


def test_dashboard_queries_use_only_contract_metrics(metrics: dict[str, Metric]) -> None:
    """Every dashboard query names only API.md's metrics (with their labels), `up` and the
    recording rules of alerts.yml."""
    exprs = dashboard_exprs()
    found = {f"{title}: {expr}": problems(expr, metrics, records()) for title, expr in exprs}
    assert len(exprs) >= 20
    assert {k: v for k, v in found.items() if v} == {}


def test_alert_rules_use_only_contract_metrics(metrics: dict[str, Metric]) -> None:
    """Every rule expression of alerts.yml names only API.md's metrics (with their labels),
    `up` and the file's own recording rules."""
    found = {
        r.get("alert", r.get("record")): problems(r["expr"], metrics, records()) for r in rules()
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_dashboard_covers_every_contract_metric(metrics: dict[str, Metric]) -> None:
    """Every metric of the table appears on the dashboard (a histogram through its
    series)."""
    used = {s.name for _, e in dashboard_exprs() for s in parse_promql(e).selectors}
    used |= {n.rsplit("_", 1)[0] for n in used if n.endswith(("_bucket", "_sum", "_count"))}
    assert sorted(set(metrics) - used) == []
