"""Render the fault suite's figures into docs/BENCHMARKS.md (section `faults`).

The fault suite (`pytest tests/faults`, a step of `scripts/test.sh`) prints what each test
measured and keeps it in `test-artifacts/faults/figures.json`; this writes that file as a
table per fault, with the machine and commit it ran on:

    .venv/bin/pytest tests/faults && .venv/bin/python scripts/faults_report.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from scripts.bench.reportfile import git_commit, load_avg, machine_info, markers, write_section
from scripts.harness import ROOT

FIGURES = ROOT / "test-artifacts" / "faults" / "figures.json"
REPORT = ROOT / "docs" / "BENCHMARKS.md"
COMMAND = ".venv/bin/pytest tests/faults && .venv/bin/python scripts/faults_report.py"


def _redis_version() -> str:
    try:
        done = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return next((w[2:] for w in done.stdout.split() if w.startswith("v=")), "unknown")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False).replace("|", "\\|")
    return str(value).replace("|", "\\|")


def render(figures: dict[str, dict[str, Any]], note: str) -> str:
    """The section: what ran where, then one table per fault."""
    begin, end = markers("faults")
    info = machine_info(_redis_version())
    lines = [
        begin,
        "## Fault suite (`tests/faults/`)",
        "",
        f"`{COMMAND}` — commit `{git_commit()}`, {info['nproc']} cores ({info['cpu']}),"
        f" {info['memory']}, Python {info['python']}, Redis {info['redis']},"
        f" load {load_avg(os.getloadavg())} when rendered. {note}".rstrip(),
        "",
        "Each test runs real `ragq serve` / `ragq worker` processes, the test LLM and a Redis of",
        "its own (AOF everysec); the assertions are the acceptance of issue #10, the figures",
        "below what the run measured. docs/ARCHITECTURE.md (Guarantees) says what they mean.",
    ]
    for section, values in figures.items():
        lines += ["", f"### {section}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {name} | {_cell(value)} |" for name, value in values.items()]
    lines.append(end)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", type=Path, default=FIGURES, help=f"default: {FIGURES}")
    parser.add_argument("--out", type=Path, default=REPORT, help=f"default: {REPORT}")
    parser.add_argument("--note", default="", help="a sentence on how the run was made")
    args = parser.parse_args()
    if not args.figures.exists():
        parser.error(f"{args.figures} does not exist: run the fault suite first")
    figures = json.loads(args.figures.read_text())
    write_section(args.out, render(figures, args.note), "faults")
    print(f"wrote section faults of {args.out} ({len(figures)} faults)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
