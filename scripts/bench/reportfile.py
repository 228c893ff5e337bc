"""The benchmarks' report file (docs/BENCHMARKS.md): each benchmark replaces only its own
section, between `<!-- bench:NAME -->` markers; and what every section states about the
run (machine, commit, effective settings, warnings in the stack's logs)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from scripts.bench.stack import log
from scripts.harness import ROOT


def markers(section: str, kind: str = "bench") -> tuple[str, str]:
    """The comment lines that delimit one section of a report file (`eval` in docs/EVAL.md)."""
    return f"<!-- {kind}:{section} -->", f"<!-- /{kind}:{section} -->"


def table(cols: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table's lines: the header, its rule, a line per row."""
    lines = ["| " + " | ".join(str(c) for c in cells) + " |" for cells in [cols, *rows]]
    lines.insert(1, "|" + "|".join("---" for _ in cols) + "|")
    return lines


INTRO = """# Benchmarks

Figures measured on a real ragq stack. Each section is written by one script under
`scripts/bench/`, which starts its own processes (API, worker, the test LLM from
`scripts/testllm/`) against Redis DB 14 and replaces only its own section, between
`<!-- bench:NAME -->` markers. Re-run the script to refresh a section. The machines these
ran on are small and shared, so compare figures within one run rather than across runs.
"""


def read_text(path: Path) -> str:
    """A text file's content; empty when it does not exist."""
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def load_avg(values: tuple[float, float, float]) -> str:
    """A load average triple as 1/5/15 minutes."""
    return "/".join(f"{v:.2f}" for v in values)


def machine_info(redis_version: str) -> dict[str, str]:
    cpuinfo = read_text(Path("/proc/cpuinfo"))
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        platform.processor() or "unknown",
    )
    meminfo = read_text(Path("/proc/meminfo"))
    mem_kb = next(
        (int(ln.split()[1]) for ln in meminfo.splitlines() if ln.startswith("MemTotal:")), 0
    )
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "redis": redis_version,
        "kernel": platform.release(),
    }


def _git(*args: str) -> str | None:
    """The output of a read-only git command in the repository, None if it failed."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_commit() -> str:
    """The checked-out commit (read-only git call); the tree may also hold uncommitted edits."""
    return _git("rev-parse", "--short", "HEAD") or "unknown"


def dirty() -> bool:
    """Whether tracked files differ from the commit (a read-only git call)."""
    return bool(_git("status", "--porcelain", "--untracked-files=no"))


def effective_settings(env: dict[str, str], names: Sequence[str]) -> dict[str, str]:
    """The settings the children run with, read through ragq's own Settings."""
    try:
        from shared.config import Settings  # ragq is installed in the venv

        saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("RAGQ_")}
        try:
            os.environ.update({k: v for k, v in env.items() if k.startswith("RAGQ_")})
            settings = Settings()
        finally:
            for k in [k for k in os.environ if k.startswith("RAGQ_")]:
                del os.environ[k]
            os.environ.update(saved)
        return {f"RAGQ_{n.upper()}": str(getattr(settings, n)) for n in names}
    except Exception as exc:  # informative only
        return {"(settings)": f"could not be read: {exc}"}


def environment_line(env: dict[str, str], settings: dict[str, str]) -> str:
    """The report's environment line: the variables the bench set, then the settings in
    effect."""
    given = ", ".join(f"`{k}={v}`" for k, v in sorted(env.items()))
    effective = ", ".join(f"`{k}={v}`" for k, v in settings.items())
    return f"- Environment: {given}; effective: {effective}."


def findings_markdown(findings: list[str]) -> list[str]:
    """The report's lines on warnings and errors found in the stack's logs (none: no lines)."""
    if not findings:
        return []
    return ["", "### Warnings and errors in the stack's logs", "", *(f"- `{f}`" for f in findings)]


def write_section(
    path: Path, section: str, name: str, *, kind: str = "bench", intro: str = INTRO
) -> None:
    """Create the file with an intro if missing; replace or append this benchmark's section."""
    text = read_text(path) or intro
    begin, end = markers(name, kind)
    if begin in text and end in text:
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def log_findings(paths: Iterable[Path], limit: int = 12) -> list[str]:
    """Distinct warning/error events (and tracebacks) in the children's logs."""
    seen: Counter[str] = Counter()
    for path in paths:
        for line in read_text(path).splitlines():
            text = line.strip()
            if not text:
                continue
            try:
                entry = json.loads(text)
            except ValueError:
                if "Traceback" in text or "Error" in text:
                    seen[f"{path.stem}: {text[:160]}"] += 1
                continue
            if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
                event = str(entry.get("event", ""))[:120]
                seen[f"{path.stem}: {entry['level']} {event}"] += 1
    return [f"{k} (x{n})" for k, n in seen.most_common(limit)]


def publish(section: str, failures: list[str], args: argparse.Namespace) -> int:
    """Write the report section, unless the run had failures: then list them (exit 1)."""
    if failures:
        log(f"{len(failures)} failure(s); {args.out} left unchanged:")
        for failure in failures[:20]:
            log(f"  {failure}")
        return 1
    write_section(Path(args.out), section, args.section)
    log(f"wrote the section to {args.out}")
    return 0


def add_report_arguments(parser: argparse.ArgumentParser, section: str, title: str) -> None:
    """The options every stack benchmark shares: report file, note, settings, logs, section."""
    parser.add_argument("--out", default="docs/BENCHMARKS.md", help="Markdown file to update")
    parser.add_argument("--note", default="", help="free text for the run line of the report")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="RAGQ_NAME=VALUE",
        help="extra setting for the API and worker (repeatable)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with logs")
    parser.add_argument("--section", default=section, help="name of the report section to write")
    parser.add_argument("--title", default=title, help="heading of the report section")
