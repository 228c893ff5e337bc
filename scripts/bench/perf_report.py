"""The perf benchmark's report: each figure's part of the section (its tables and its goals,
each goal met or not), and the section around them: how, where and on what the run was made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from scripts.bench.reportfile import environment_line, findings_markdown, load_avg, markers, table
from scripts.bench.stats import fmt, quantile

LoadAvg = tuple[float, float, float]


@dataclass
class Goal:
    """One goal of one figure, and whether this run met it (None: not measured)."""

    figure: str
    target: str
    measured: str
    ok: bool | None


@dataclass
class Part:
    """One figure's part of the section: a heading, its lines and its goals."""

    title: str
    lines: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)


def mark(ok: bool | None) -> str:
    """A goal's pass/fail mark."""
    return "n/a" if ok is None else ("pass" if ok else "**FAIL**")


def dist(label: str, values: Sequence[float], digits: int = 1) -> list[object]:
    """A table row: label, n, p50, p99, max (nearest rank)."""
    cells = [fmt(quantile(values, q), digits) for q in (0.5, 0.99, 1.0)]
    return [label, len(values), *cells]


DIST_COLS = ("measure (ms)", "n", "p50", "p99", "max")


def ratio(a: float, b: float) -> float:
    """a / b, NaN when either is missing or b is 0."""
    return math.nan if math.isnan(a) or math.isnan(b) or b == 0 else a / b


def at_most(value: float, bound: float) -> bool | None:
    """value ≤ bound; None when the value was not measured."""
    return None if math.isnan(value) else value <= bound


def at_least(value: float, bound: float) -> bool | None:
    """value ≥ bound; None when the value was not measured."""
    return None if math.isnan(value) else value >= bound


@dataclass
class Run:
    """How, where and on what the run was made."""

    command: str
    commit: str
    dirty: bool
    started: datetime
    elapsed_s: float
    machine: dict[str, str]
    env: dict[str, str]
    settings: dict[str, str]
    load_before: LoadAvg
    load_after: LoadAvg
    docs: list[str]
    bases: int
    phases: list[str]
    note: str
    findings: list[str]


def markdown(run: Run, parts: Sequence[Part], section: str, title: str) -> str:
    """The whole section, between its markers."""
    begin, end = markers(section)
    m = run.machine
    tree = " plus uncommitted changes in the working tree" if run.dirty else ""
    parts = sorted(parts, key=lambda part: part.title)  # "1. …" to "8. …", whatever ran first
    goals = [g for part in parts for g in part.goals]
    lines = [
        begin,
        f"## {title}",
        "",
        f"Command: `{run.command}` (from the repository root).",
        "",
        f"- Run: {run.started:%Y-%m-%d %H:%M} UTC, {run.elapsed_s / 60:.1f} min, commit "
        f"`{run.commit}`{tree}" + (f" — {run.note}" if run.note else "") + ".",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, Redis {m['redis']}; shared with other work.",
        f"- Load average (1/5/15 min) before: {load_avg(run.load_before)}, "
        f"after: {load_avg(run.load_after)}.",
        "- Stack: a `redis-server` of the run's own (free port, its data in the run's temp "
        "dir, AOF `everysec`), the test LLM (`python -m scripts.testllm`), `ragq serve` (one "
        "process) and one `ragq worker` (both queues), plus this load generator, all on this "
        "machine over loopback.",
        environment_line(run.env, run.settings),
        f"- Data: {len(run.docs)} pages of `data/corpus/` indexed first ({', '.join(run.docs)}).",
        f"- Questions: {run.bases} questions of `data/deploy_eval.jsonl` answered by those "
        "pages, made unique per request (so neither the query-embedding cache nor the answer "
        "cache serves them): request n asks base question n mod "
        f"{run.bases}, with one of three openings (none, `Quick one: `, `For the runbook: `) "
        "and a distinct ticket reference appended (`… (ticket OPS-00042)`). Only the cache "
        "figure repeats one question on purpose.",
        f"- Phases run: {', '.join(run.phases)}. Percentiles are nearest-rank.",
        "",
        "### Goals",
        "",
        *table(
            ("figure", "goal", "measured", "result"),
            [(g.figure, g.target, g.measured, mark(g.ok)) for g in goals],
        ),
    ]
    for part in parts:
        lines += ["", f"### {part.title}", "", *part.lines]
    lines += [
        "",
        "### What limits these figures",
        "",
        f"- {m['nproc']} CPUs run everything at once: Redis, the test LLM, the API, the "
        "worker and the load generator (and, while profiled, py-spy). Throughput and capacity "
        "are what this box gives, not what each process would give on its own cores.",
        "- The test LLM does no inference: it sleeps per token, so every ratio is ragq's cost "
        "over an ideal model of the stated latency.",
        "- Loopback networking: real Redis and LLM round trips would add to every figure.",
        "- The stack runs whatever code the tree holds at the time of the run.",
    ]
    lines += findings_markdown(run.findings)
    lines.append(end)
    return "\n".join(lines)
