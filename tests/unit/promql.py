"""docs/API.md's metrics table (the contract) and a PromQL checker against it: which series
names, labels and label values an expression uses that the contract, Prometheus's `up` and
this project's recording rules do not define. Used by the deploy tests and the e2e ones."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.unit.deployfiles import scrape_job_names

TARGET_LABELS = {"job", "instance"}  # attached by Prometheus to every scraped series
BUILTINS = {"up"}  # Prometheus's own series (labels: the target labels only)
AGGREGATIONS = {
    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar",
    "topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio",
}  # fmt: skip
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
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
        return {"job": scrape_job_names()}
    if name in records:
        return dict.fromkeys(records[name])
    return None
