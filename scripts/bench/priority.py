"""Benchmark: does a flood of batch jobs delay interactive jobs? (issue #4, item 4)

Starts a real stack (test LLM, `ragq serve`, one `ragq worker` serving both queues) on
Redis DB 14 with a slow test LLM, and measures interactive jobs with no batch load and
while a flood of batch jobs waits: their queue wait at a fixed open-loop rate, and how many
complete per second when clients keep every interactive slot busy (closed loop). Prints
(and writes to `--out`) a Markdown section. The stack comes from `stack.py` (the process
harness), the load from `priority_load.py`, the section from `priority_report.py`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime

import httpx

from scripts.bench.corpus import DOCS, load_questions
from scripts.bench.priority_load import JOB_TIMEOUT_S, Phase, PriorityLoad
from scripts.bench.priority_report import Report
from scripts.bench.reportfile import (
    add_report_arguments,
    effective_settings,
    git_commit,
    log_findings,
    machine_info,
    publish,
)
from scripts.bench.stack import StackError, log, parse_overrides, run_benchmark, session
from scripts.harness import Stack

SECTION = "priority"
TITLE = "Interactive jobs during a batch flood (separate queues)"
DEFAULT_ENV = {
    "RAGQ_DEFAULT_RPM": "0",  # one key sends the whole load; rate limits are not measured here
}
REPORTED_SETTINGS = (
    "worker_max_jobs",
    "worker_poll_s",
    "max_queue_depth",
    "default_rpm",
    "answer_cache_ttl_s",
    "llm_timeout_s",
)


async def run(args: argparse.Namespace, stacks: list[Stack]) -> int:
    """One run: the stack, the warm-up, then the four phases."""
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    overrides = parse_overrides(args.env, DEFAULT_ENV)
    async with session("priority", args.keep_logs, stacks) as bench_run:
        stack = bench_run.stack
        key = await bench_run.start_stack(overrides)
        settings = effective_settings(stack.env, REPORTED_SETTINGS)
        clients = args.clients or int(settings["RAGQ_WORKER_MAX_JOBS"])
        if args.flood + 2 * clients > int(settings["RAGQ_MAX_QUEUE_DEPTH"]):
            raise StackError("--flood is above the admission limit: raise RAGQ_MAX_QUEUE_DEPTH")
        timeout = httpx.Timeout(JOB_TIMEOUT_S, connect=5.0, pool=30.0)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            redis, pids = bench_run.redis, bench_run.pids()
            bench = PriorityLoad(client, redis, stack.url, stack.llm_url, key, pids)
            bench.questions = load_questions(DOCS)
            bench.max_tokens = args.max_tokens
            await bench.ingest(DOCS)
            await bench.control(
                first_token_latency_ms=args.first_token_ms, token_latency_ms=args.token_ms
            )
            warmup = await bench.warm_up()
            log(f"warm-up: llm stage {[round(s.llm_ms) for s in warmup]} ms")
            phases = {
                "open-idle": Phase("open loop, no flood", flood=False, closed=False),
                "open-flood": Phase(
                    f"open loop, {args.flood} batch jobs", flood=True, closed=False
                ),
                "closed-idle": Phase("closed loop, no flood", flood=False, closed=True),
                "closed-flood": Phase(
                    f"closed loop, {args.flood} batch jobs", flood=True, closed=True
                ),
            }

            def open_loop(phase: Phase) -> Awaitable[None]:
                return bench.open_loop(phase, args.rate, args.duration)

            def closed_loop(phase: Phase) -> Awaitable[None]:
                return bench.closed_loop(phase, clients, args.warmup, args.duration)

            await bench.run_phase(phases["open-idle"], 0, open_loop, drain_flood=False)
            await bench.run_phase(phases["open-flood"], args.flood, open_loop, drain_flood=True)
            await bench.run_phase(phases["closed-idle"], 0, closed_loop, drain_flood=False)
            await bench.run_phase(
                phases["closed-flood"], args.flood, closed_loop, drain_flood=False
            )
            await bench.wait_idle()
        load_after = os.getloadavg()
        await stack.stop()
        report = Report(
            command=shlex.join(["python", *sys.argv]),
            commit=git_commit(),
            started=started,
            machine=machine_info(bench_run.redis_version),
            env=bench_run.shown_env(),
            settings=settings,
            args=args,
            warmup=warmup,
            phases=phases,
            flood_waits=bench.flood_waits,
            flood_span_s=bench.flood_span_s,
            load_before=load_before,
            load_after=load_after,
            log_findings=log_findings(bench_run.log_paths()),
        )
        for line in report.table():
            print(line)
        section = report.markdown()
        failures = [str(f) for phase in phases.values() for f in phase.failures]
        rc = publish(section, failures, args)
        bench_run.ok = rc == 0
        return rc


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The priority benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--flood", type=int, default=500, help="batch jobs per flood")
    parser.add_argument("--rate", type=float, default=4.0, help="open loop: interactive jobs/s")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per timed window")
    parser.add_argument("--warmup", type=float, default=5.0, help="closed loop: seconds before")
    parser.add_argument(
        "--clients", type=int, default=0, help="closed loop: clients (0 = the interactive slots)"
    )
    parser.add_argument("--first-token-ms", type=float, default=100.0)
    parser.add_argument("--token-ms", type=float, default=150.0, help="test LLM: per token")
    parser.add_argument("--max-tokens", type=int, default=20, help="answer length cap")
    add_report_arguments(parser, SECTION, TITLE)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.warmup < 0 or args.flood < 1:
        parser.error("--rate, --duration and --flood must be positive, --warmup not negative")
    if args.clients < 0 or args.max_tokens < 1:
        parser.error("--clients must not be negative and --max-tokens must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 published, 1 failures in the run, 2 no stack."""
    return run_benchmark(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
