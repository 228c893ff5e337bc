"""Benchmark: loading a corpus of generated documents with `ragq ingest --wait` under the
default rate limit (issue #9, item 5).

Starts a real stack (test LLM, `ragq serve`, one `ragq worker`) on Redis DB 14 with the
default per-key rate limit (`RAGQ_DEFAULT_RPM` at its default), writes `--docs` generated
Markdown pages to a folder, and runs `ragq ingest FOLDER --wait` as a user would: the wall
time, how much of it the client spent waiting on `Retry-After`, and how many requests it
sent, from the command's `--summary-json`. Then it runs the same command again, which must
skip every unchanged file, and prints (and writes to `--out`) a Markdown section.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts.bench.reportfile import (
    add_report_arguments,
    effective_settings,
    environment_line,
    findings_markdown,
    git_commit,
    load_avg,
    log_findings,
    machine_info,
    markers,
    publish,
)
from scripts.bench.stack import log, parse_overrides, run_benchmark, session
from scripts.harness import Stack
from scripts.harness.stack import RAGQ
from shared.config import Settings

SECTION = "ingest"
TITLE = "Loading a corpus with `ragq ingest --wait` under the default rate limit"
REPORTED = ("default_rpm", "bulk_max_documents", "worker_max_jobs", "chunk_max_chars")
INGEST_TIMEOUT_S = 3600.0
VOCABULARY = (
    "cluster node replica shard index token lease quota budget tenant policy rotate vault "
    "secret deploy rollback canary gateway proxy cache eviction latency throughput queue "
    "worker retry backoff timeout snapshot restore backup region zone failover health probe "
    "metric alert dashboard trace span export import schema migration version release build"
)
WORDS = VOCABULARY.split()


def write_corpus(folder: Path, count: int, seed: int = 9) -> int:
    """`count` Markdown pages of 1 to 4 KB, each with a title, headings and paragraphs; bytes."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for n in range(count):
        topic = " ".join(rng.sample(WORDS, 3))
        sections = []
        for s in range(rng.randint(2, 5)):
            words = rng.choices(WORDS, k=rng.randint(60, 140))
            sections.append(f"## Part {s + 1}: {rng.choice(WORDS)}\n\n{' '.join(words)}.\n")
        text = f"# Page {n}: {topic}\n\n" + "\n".join(sections)
        path = folder / f"section-{n // 100:02d}" / f"page-{n:05d}.md"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        total += len(text.encode())
    return total


@dataclass(frozen=True)
class IngestRun:
    """One `ragq ingest` run as the benchmark saw it."""

    name: str
    exit_code: int
    wall_s: float
    summary: dict[str, Any]


async def run_ingest(stack: Stack, key: str, folder: Path, name: str) -> IngestRun:
    """`ragq ingest FOLDER --wait` as a subprocess; its summary from --summary-json."""
    summary_path = folder.parent / f"{name}-summary.json"
    argv = [*RAGQ, "ingest", str(folder), "--wait", "--url", stack.url, "--key", key]
    argv += ["--summary-json", str(summary_path), "--no-progress"]
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, env=stack.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), INGEST_TIMEOUT_S)
    wall = time.perf_counter() - started
    tail = err.decode(errors="replace").strip().splitlines()[-3:]
    log(f"{name}: exit {proc.returncode} in {wall:.1f} s; " + " | ".join(tail))
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return IngestRun(name, proc.returncode or 0, wall, summary)


def markdown(args: argparse.Namespace, facts: dict[str, Any], runs: list[IngestRun]) -> str:
    """The report section."""
    begin, end = markers(args.section)
    rows = []
    for r in runs:
        s = r.summary
        waited = float(s.get("waited_on_limits_s", 0.0))
        rows.append(
            f"| {r.name} | {r.exit_code} | {r.wall_s:.1f} | {waited:.1f} "
            f"({100 * waited / r.wall_s if r.wall_s else 0:.0f} %) | {s.get('requests', '?')} "
            f"| {s.get('rate_limited', '?')} | {s.get('queued', '?')} | "
            f"{s.get('unchanged', '?')} | {s.get('indexed', '?')} | {s.get('failed', '?')} |"
        )
    lines = [
        begin,
        f"## {args.title}",
        "",
        f"- Command: `{facts['command']}`",
        f"- Run: {facts['started']}, commit `{facts['commit']}`. {args.note}".rstrip(),
        "- Machine: " + ", ".join(f"{k} {v}" for k, v in facts["machine"].items()),
        environment_line(facts["env"], facts["settings"]),
        f"- Load average before/after: {facts['load_before']} → {facts['load_after']}.",
        f"- Corpus: {args.docs} generated Markdown pages in 20 folders, "
        f"{facts['bytes'] / 1e6:.1f} MB.",
        "",
        "| run | exit | wall s | waiting on limits s | requests | 429s | queued | unchanged "
        "| indexed | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "`requests` counts every HTTP request the client sent (bulk loads and status waits), "
        "`429s` the ones refused by a limit, and `waiting on limits` the seconds it slept on "
        "their `Retry-After`. The second run finds every file unchanged (content hash) and "
        "loads nothing.",
        *findings_markdown(facts["findings"]),
        end,
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace, stacks: list[Stack]) -> int:
    """One run: the stack, the corpus, the first load and the resumed one."""
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    default_rpm = Settings.model_fields["default_rpm"].default
    overrides = parse_overrides(args.env, {"RAGQ_DEFAULT_RPM": str(default_rpm)})
    async with session(SECTION, args.keep_logs, stacks) as bench_run:
        stack = bench_run.stack
        key = await bench_run.start_stack(overrides)
        folder = bench_run.workdir / "corpus"
        size = write_corpus(folder, args.docs)
        log(f"wrote {args.docs} documents ({size / 1e6:.1f} MB) to {folder}")
        runs = [await run_ingest(stack, key, folder, "first load")]
        runs.append(await run_ingest(stack, key, folder, "second run (resume)"))
        await stack.stop()
        facts = {
            "command": shlex.join(["python", *sys.argv]),
            "started": started.strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git_commit(),
            "machine": machine_info(bench_run.redis_version),
            "env": bench_run.shown_env(),
            "settings": effective_settings(stack.env, REPORTED),
            "load_before": load_avg(load_before),
            "load_after": load_avg(os.getloadavg()),
            "bytes": size,
            "findings": log_findings(bench_run.log_paths()),
        }
        section = markdown(args, facts, runs)
        print(section)
        failures = [f"{r.name}: exit {r.exit_code}" for r in runs if r.exit_code != 0]
        failures += [
            f"{r.name}: {r.summary.get('failed')} failed" for r in runs if r.summary.get("failed")
        ]
        if runs[0].summary.get("indexed") != args.docs:
            failures.append(f"first load indexed {runs[0].summary.get('indexed')} of {args.docs}")
        if runs[1].summary.get("unchanged") != args.docs:
            failures.append(f"second run: {runs[1].summary.get('unchanged')} unchanged")
        rc = publish(section, failures, args)
        bench_run.ok = rc == 0
        return rc


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The ingest benchmark's options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="documents to generate and load")
    add_report_arguments(parser, SECTION, TITLE)
    args = parser.parse_args(argv)
    if args.docs < 1:
        parser.error("--docs must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 published, 1 failures in the run, 2 no stack."""
    return run_benchmark(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
