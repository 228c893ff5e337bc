"""Benchmark of job pickup latency, end-to-end overhead over a direct LLM call, and idle Redis cost.

Starts a real stack (test LLM, `ragq serve`, one `ragq worker`) on Redis DB 14, drives it
open-loop at a fixed rate, and prints (and writes to `--out`) a Markdown section with the figures.
The stack comes from `stack.py` (the process harness), the load from `pickup_load.py`, the
section from `pickup_report.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
import openai

from scripts.bench.corpus import DOCS, load_questions
from scripts.bench.idle import background_rate, measure_idle
from scripts.bench.pickup_load import RAG_TIMEOUT_S, PickupLoad
from scripts.bench.pickup_report import Report
from scripts.bench.reportfile import (
    add_report_arguments,
    effective_settings,
    git_commit,
    log_findings,
    machine_info,
    publish,
)
from scripts.bench.stack import log, parse_overrides, run_benchmark, session
from scripts.harness import ROOT, Stack

IDLE_WINDOW_S = 10.0
IDLE_SETTLE_S = 3.0
PICKUP_SETTINGS = ("worker_poll_s", "worker_max_jobs", "heartbeat_s", "lock_ttl_s", "llm_timeout_s")


async def run(args: argparse.Namespace, stacks: list[Stack]) -> int:
    """One run: the stack, the warm-up and calibration, both phases, the idle window."""
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    overrides = parse_overrides(args.env)
    async with session("pickup", args.keep_logs, stacks) as bench_run:
        stack = bench_run.stack
        bg_rate = await background_rate(bench_run.redis)
        if (ROOT / ".env").exists():
            log("note: a .env file exists in the repository root; it applies where not overridden")
        key = await bench_run.start_stack(overrides)
        limit = max(100, math.ceil(args.rate * 40))
        timeout = httpx.Timeout(RAG_TIMEOUT_S + 15, connect=5.0, pool=10.0)
        limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            oai = openai.AsyncOpenAI(base_url=f"{stack.llm_url}/v1", api_key="x", max_retries=0)
            try:
                bench = PickupLoad(client, oai, stack.url, stack.llm_url, key)
                bench.questions = load_questions(DOCS)
                await bench.ingest(DOCS)
                tokens = await bench.capture_prompts()
                log(f"warm-up: {len(tokens)} questions, completion tokens {tokens}")
                calibration = await bench.calibrate(tokens)
                await bench.run_pickup(args.rate, args.duration)
                await bench.run_overhead(args.rate, args.duration)
                log(f"idle phase: {IDLE_SETTLE_S:g} s settle, then a {IDLE_WINDOW_S:g} s window")
                await asyncio.sleep(IDLE_SETTLE_S)
                children = {n: p for n, p in bench_run.pids().items() if n in ("api", "worker")}
                idle = await measure_idle(bench_run.redis, children, IDLE_WINDOW_S)
            finally:
                await oai.close()
        load_after = os.getloadavg()
        await stack.stop()
        report = Report(
            command=shlex.join(["python", *sys.argv]),
            commit=git_commit(),
            started=started,
            machine=machine_info(bench_run.redis_version),
            env=bench_run.shown_env(),
            settings=effective_settings(stack.env, PICKUP_SETTINGS),
            rate=args.rate,
            duration=args.duration,
            docs=list(DOCS),
            questions=len(bench.questions),
            calibration=calibration,
            results=bench.results,
            idle=idle,
            load_before=load_before,
            load_after=load_after,
            background_rate=bg_rate,
            log_findings=log_findings(bench_run.log_paths()),
            note=args.note,
            section=args.section,
            title=args.title,
        )
        section = report.markdown()
        print(section)
        failures = [f"{f.phase} #{f.index}: {f.detail}" for f in bench.results.failures]
        rc = publish(section, failures, args)
        bench_run.ok = rc == 0
        return rc


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The pickup benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per timed phase")
    add_report_arguments(
        parser, "pickup", "Pickup latency, overhead over a direct LLM call, idle cost"
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0:
        parser.error("--rate and --duration must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 published, 1 failures in the run, 2 no stack."""
    return run_benchmark(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
