"""deploy/prometheus and deploy/grafana against docs/API.md's metrics table (the contract):
every PromQL expression names only contract metrics, their labels and listed label values,
Prometheus's `up` and this project's own recording rules; every alert carries its
annotations and is unit-tested; the dashboard covers the whole table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
API_MD = ROOT / "docs" / "API.md"
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"

TARGET_LABELS = {"job", "instance"}  # attached by Prometheus to every scraped series
BUILTINS = {"up"}  # Prometheus's own series (labels: the target labels only)
AGGREGATIONS = {
    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar",
    "topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio",
}  # fmt: skip
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
ALERT_ANNOTATIONS = {"summary", "description", "runbook"}
SEVERITIES = {"critical", "warning"}
_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
      | (?P<range>\[[^\]]*\])
      | (?P<number>0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?[smhdwy]?|\.\d+)
      | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
      | (?P<op>=~|!~|!=|==|<=|>=|[=<>+\-*/%^(){},@])""",
    re.VERBOSE,
)
_GRAFANA_VAR = re.compile(r"\$(?:\{\w+(?::\w+)?\}|\w+)")


@dataclass(frozen=True)
class Metric:
    """One row of API.md's metrics table."""

    type: str
    labels: dict[str, frozenset[str] | None]  # label → its listed values, None = open


@dataclass
class Selector:
    """A series name used in an expression, with its label matchers."""

    name: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # (label, op, value)


@dataclass
class Query:
    """What an expression reads: series selectors and grouping labels."""

    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)


def contract_metrics(text: str) -> dict[str, Metric]:
    """The metrics table of API.md's "Metrics" section: name → type and labels."""
    section = text.split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
    metrics: dict[str, Metric] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`ragq_"):
            continue
        labels: dict[str, frozenset[str] | None] = {}
        for m in re.finditer(r"`(\w+)`\s*(?:\(([^)]*)\))?", cells[2]):
            values = frozenset(re.findall(r"`([^`]+)`", m.group(2) or ""))
            labels[m.group(1)] = values or None
        metrics[cells[0].strip("`")] = Metric(cells[1], labels)
    return metrics


def parse_promql(expr: str) -> Query:
    """The series selectors and grouping labels of a PromQL expression (a tokenizer, not a
    full parser: enough to tell metric names from functions, keywords and labels)."""
    tokens = list(_tokens(_GRAFANA_VAR.sub("1m", expr)))
    query = Query()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "ident" and text in GROUPING and following == "(":
            end = tokens.index(("op", ")"), i)
            query.grouping |= {t for k, t in tokens[i + 2 : end] if k == "ident"}
            i = end
        elif kind == "ident" and (following == "(" or text in AGGREGATIONS | KEYWORDS):
            pass  # a function, an aggregation or a keyword
        elif kind == "ident":
            query.selectors.append(Selector(text))
            if following == "{":
                i = _matchers(tokens, i + 1, query.selectors[-1])
        elif text == "{":  # a selector without a name: {__name__="…"}
            selector = Selector("")
            i = _matchers(tokens, i, selector)
            names = [v for label, op, v in selector.matchers if label == "__name__" and op == "="]
            query.selectors.append(Selector(names[0] if names else "{}", selector.matchers))
        i += 1
    return query


def _tokens(expr: str) -> Iterator[tuple[str, str]]:
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"cannot read PromQL at {expr[pos : pos + 20]!r} in {expr!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "space":
            yield kind, m.group()


def _matchers(tokens: list[tuple[str, str]], start: int, selector: Selector) -> int:
    """Read `{label op "value", …}` from tokens[start] == "{"; the index of its "}"."""
    i = start + 1
    while tokens[i][1] != "}":
        if tokens[i][1] == ",":
            i += 1
            continue
        label, op, value = tokens[i][1], tokens[i + 1][1], tokens[i + 2][1]
        selector.matchers.append((label, op, value[1:-1]))
        i += 3
    return i


def problems(expr: str, metrics: dict[str, Metric], records: dict[str, set[str]]) -> list[str]:
    """What in `expr` is outside the contract; [] when it only names contract metrics (or
    their histogram series), their labels and listed values, `up` and our recording rules."""
    query = parse_promql(expr)
    found: list[str] = []
    known_labels = set(TARGET_LABELS)
    for selector in query.selectors:
        labels = _labels_of(selector.name, metrics, records)
        if labels is None:
            found.append(f"unknown metric {selector.name!r}")
            continue
        known_labels |= set(labels)
        for label, op, value in selector.matchers:
            if label == "__name__":
                continue  # the name itself, checked above
            if label not in labels and label not in TARGET_LABELS:
                found.append(f"{selector.name}: unknown label {label!r}")
            elif (allowed := labels.get(label)) is not None:
                found += [
                    f"{selector.name}: {label}={v!r} not listed"
                    for v in _literals(op, value)
                    if v not in allowed
                ]
    found += [f"grouping by unknown label {g!r}" for g in sorted(query.grouping - known_labels)]
    return found


def _literals(op: str, value: str) -> list[str]:
    """The label values a matcher names: its value, or the words of a `a|b` regex; none for
    any other regex (`5..`)."""
    if op in {"=", "!="}:
        return [value]
    return value.split("|") if re.fullmatch(r"[\w/+-]+(?:\|[\w/+-]+)*", value) else []


def _labels_of(
    name: str, metrics: dict[str, Metric], records: dict[str, set[str]]
) -> dict[str, frozenset[str] | None] | None:
    """The labels (with their listed values) a series name may carry; None if unknown."""
    if name in metrics:
        return metrics[name].labels
    base, _, suffix = name.rpartition("_")
    histogram = base in metrics and metrics[base].type == "histogram"
    if histogram and suffix in {"bucket", "sum", "count"}:
        extra: dict[str, frozenset[str] | None] = {"le": None} if suffix == "bucket" else {}
        return {**metrics[base].labels, **extra}
    if name in BUILTINS:
        return {"job": _job_names()}
    if name in records:
        return dict.fromkeys(records[name])
    return None


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _job_names() -> frozenset[str]:
    """The scrape jobs of prometheus.yml: the values `up{job=…}` may match."""
    return frozenset(
        c["job_name"] for c in _load_yaml(PROMETHEUS / "prometheus.yml")["scrape_configs"]
    )


def _rules() -> list[dict[str, Any]]:
    groups = _load_yaml(PROMETHEUS / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _records() -> dict[str, set[str]]:
    """Recording rules of alerts.yml: name → the labels they set."""
    return {r["record"]: set(r.get("labels", {})) for r in _rules() if "record" in r}


def _alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in _rules() if "alert" in r}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows hold their panels


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((GRAFANA / "dashboards" / "ragq.json").read_text()))


def _dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of the dashboard."""
    return [
        (p["title"], t["expr"])
        for p in _panels(_dashboard()["panels"])
        for t in p.get("targets", [])
    ]


@pytest.fixture(scope="module")
def metrics() -> dict[str, Metric]:
    """API.md's metrics table."""
    return contract_metrics(API_MD.read_text())


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
    assert problems(expr, metrics, _records()) == expected


def test_dashboard_queries_use_only_contract_metrics(metrics: dict[str, Metric]) -> None:
    """Every dashboard query names only API.md's metrics (with their labels), `up` and the
    recording rules of alerts.yml."""
    exprs = _dashboard_exprs()
    found = {f"{title}: {expr}": problems(expr, metrics, _records()) for title, expr in exprs}
    assert len(exprs) >= 20
    assert {k: v for k, v in found.items() if v} == {}


def test_alert_rules_use_only_contract_metrics(metrics: dict[str, Metric]) -> None:
    """Every rule expression of alerts.yml names only API.md's metrics (with their labels),
    `up` and the file's own recording rules."""
    found = {
        r.get("alert", r.get("record")): problems(r["expr"], metrics, _records()) for r in _rules()
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_dashboard_covers_every_contract_metric(metrics: dict[str, Metric]) -> None:
    """Every metric of the table appears on the dashboard (a histogram through its
    series)."""
    used = {s.name for _, e in _dashboard_exprs() for s in parse_promql(e).selectors}
    used |= {n.rsplit("_", 1)[0] for n in used if n.endswith(("_bucket", "_sum", "_count"))}
    assert sorted(set(metrics) - used) == []


def test_every_alert_has_severity_and_annotations() -> None:
    """Each alert has a known severity and a non-empty summary, description and runbook
    whose first step is concrete (it starts with "First")."""
    alerts = _alerts()
    missing = {
        name: sorted(
            {k for k in ALERT_ANNOTATIONS if not str(rule.get("annotations", {}).get(k, ""))}
        )
        for name, rule in alerts.items()
    }
    severities = {name: rule.get("labels", {}).get("severity") for name, rule in alerts.items()}
    vague = [n for n, r in alerts.items() if not r["annotations"]["runbook"].startswith("First")]
    assert len(alerts) >= 6
    assert {n: m for n, m in missing.items() if m} == {}
    assert {n: s for n, s in severities.items() if s not in SEVERITIES} == {}
    assert vague == []


def test_every_alert_is_unit_tested_firing_and_not() -> None:
    """alerts_test.yml checks every alert in a firing case and in a not-firing case."""
    tests = _load_yaml(PROMETHEUS / "alerts_test.yml")["tests"]
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert sorted(set(_alerts()) - firing) == []
    assert sorted(set(_alerts()) - silent) == []


def test_prometheus_scrapes_every_api_and_worker_replica() -> None:
    """prometheus.yml discovers the compose services `api` and `worker` by DNS (every
    replica, whatever the scale) and loads alerts.yml."""
    config = _load_yaml(PROMETHEUS / "prometheus.yml")
    jobs = {c["job_name"]: c for c in config["scrape_configs"]}
    discovered = {
        name: [n for sd in jobs[name].get("dns_sd_configs", []) for n in sd["names"]]
        for name in ("ragq-api", "ragq-worker")
    }
    assert config["rule_files"] == ["alerts.yml"]
    assert discovered == {"ragq-api": ["api"], "ragq-worker": ["worker"]}


def test_grafana_provisioning_matches_the_dashboard() -> None:
    """Every dashboard query uses the provisioned Prometheus datasource (by uid), and the
    dashboard provider loads files from a folder."""
    datasources = _load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    providers = _load_yaml(GRAFANA / "provisioning" / "dashboards" / "ragq.yml")["providers"]
    uids = {d["uid"] for d in datasources["datasources"] if d["type"] == "prometheus"}
    used = {
        t.get("datasource", p.get("datasource", {})).get("uid")
        for p in _panels(_dashboard()["panels"])
        for t in p.get("targets", [])
    }
    assert used == uids
    assert [(p["type"], bool(p["options"]["path"])) for p in providers] == [("file", True)]


def test_observability_files_match_compose() -> None:
    """compose.yaml runs what these files point at: the `api` and `worker` services on the
    ports Prometheus discovers them at, Prometheus's config directory, Grafana's
    provisioning and dashboard folders, and the datasource's Prometheus address."""
    compose_file = ROOT / "compose.yaml"
    if not compose_file.exists():
        pytest.skip("no compose.yaml yet")
    services = _load_yaml(compose_file)["services"]
    config = _load_yaml(PROMETHEUS / "prometheus.yml")
    ports = {
        sd["names"][0]: sd["port"]
        for c in config["scrape_configs"]
        for sd in c.get("dns_sd_configs", [])
    }
    api_command = services["api"]["command"]
    worker_env = services["worker"]["environment"]
    mounts = {
        name: dict(v.split(":")[:2] for v in services[name]["volumes"] if v.startswith("./"))
        for name in ("prometheus", "grafana")
    }
    config_flag = next(
        f for f in services["prometheus"]["command"] if f.startswith("--config.file=")
    )
    provider = _load_yaml(GRAFANA / "provisioning" / "dashboards" / "ragq.yml")["providers"][0]
    datasource = _load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    assert ports == {
        "api": int(api_command[api_command.index("--port") + 1]),
        "worker": int(worker_env["RAGQ_WORKER_METRICS_PORT"]),
    }
    assert worker_env["RAGQ_HOST"] == "0.0.0.0"  # the exporter listens beyond loopback
    assert mounts["prometheus"]["./deploy/prometheus"] == str(
        Path(config_flag.split("=", 1)[1]).parent
    )
    assert mounts["grafana"] == {
        "./deploy/grafana/provisioning": "/etc/grafana/provisioning",
        "./deploy/grafana/dashboards": provider["options"]["path"],
    }
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert "prometheus" in services
