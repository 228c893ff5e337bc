"""Benchmark of ragq's performance figures side by side, in one run against a real stack:
overhead over a direct LLM call, time to first token, an answer-cache hit, submit
throughput, Redis commands per job, capacity, overload and a memory soak.

Starts a redis-server of its own, the test LLM, `ragq serve` and one `ragq worker`, indexes
20 pages of the sample corpus, then runs the phases (`--only` picks some) and prints (and
writes to `--out`, between `<!-- bench:perf -->` markers) a Markdown section with every
figure, its goal and whether it was met. Progress goes to stderr. The phases live in
perf_phases.py (1-3), perf_throughput.py (4), perf_redis.py (5) and perf_capacity.py (6-8),
the clients in perf_load.py, the profiles in perf_profile.py, the section in perf_report.py.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import openai

from scripts.bench import perf_capacity, perf_phases, perf_profile
from scripts.bench.corpus import CORPUS, DOCS, load_questions
from scripts.bench.perf_cpu import CpuUse
from scripts.bench.perf_load import PerfLoad
from scripts.bench.perf_redis import commands_per_job
from scripts.bench.perf_report import Part, Run, markdown
from scripts.bench.perf_throughput import throughput
from scripts.bench.reportfile import (
    add_report_arguments,
    dirty,
    effective_settings,
    git_commit,
    log_findings,
    machine_info,
    publish,
)
from scripts.bench.stack import Session, log, parse_overrides, run_benchmark, session
from scripts.harness import Stack, read_corpus

PHASES = ("overhead", "ttft", "cache", "redis", "throughput", "capacity", "overload", "soak")
PAGES = 20
DEFAULTS = {"RAGQ_ANSWER_CACHE_TTL_S": "86400"}  # the cache figure needs it; bench_env's is 0
SETTINGS = (
    "worker_max_jobs",
    "max_queue_depth",
    "max_queue_wait_s",
    "answer_cache_ttl_s",
    "default_rpm",
    "default_max_concurrent",
    "embeddings_model",
    "retrieval_mode",
    "llm_timeout_s",
    "worker_poll_s",
)
SHORT = (195.0, 45.0)  # figures 1-5: a direct answer of ≈195 ms, its first token at 45 ms
LONG = (1000.0, 5.0)  # figures 6-8: ≈1 s answers
TOKENS = 200
LOW_RATE = 4.0  # jobs/s of the unloaded phase that figure 7 compares with, at most...
LOW_SHARE = 0.25  # ...and at most this share of the capacity


@dataclass
class Sizes:
    """How much each phase does (`--quick` shrinks all of them)."""

    overhead: int = 100
    ttft: int = 60
    cache: int = 100
    redis: int = 30
    throughput_s: float = 4.0
    capacity_s: float = 20.0
    low_jobs: int = 30
    overload_s: float = 10.0

    @classmethod
    def quick(cls) -> Sizes:
        return cls(10, 8, 20, 5, 1.0, 5.0, 8, 3.0)


def pages() -> list[str]:
    """The bench's five pages first, then the corpus's next ones, up to PAGES."""
    ids = [*DOCS, *(d.id for d in read_corpus(CORPUS) if d.id not in DOCS)]
    return ids[:PAGES]


def command() -> str:
    """This run's command line, as typed from the repository root."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is not None and spec.name:  # python -m scripts.bench.perf
        return shlex.join(["python", "-m", spec.name, *sys.argv[1:]])
    return shlex.join(["python", *sys.argv])


async def phases(args: argparse.Namespace, run: Session, load: PerfLoad) -> list[Part]:
    """The selected phases, in order; their parts of the report."""
    sizes = Sizes.quick() if args.quick else Sizes()
    soak_s = min(args.soak_s, 10.0) if args.quick else args.soak_s
    pids = {"api": run.stack.procs["api"].pid, "worker": run.stack.procs["worker"].pid}
    max_jobs = int(
        effective_settings(run.stack.env, ["worker_max_jobs"]).get("RAGQ_WORKER_MAX_JOBS", "32")
    )
    parts: list[Part] = []
    short = await load.calibrate_direct(*SHORT, TOKENS)
    if "overhead" in args.only:
        parts.append(await perf_phases.overhead(load, sizes.overhead, short))
    if "ttft" in args.only:
        parts.append(await perf_phases.ttft(load, sizes.ttft, short))
    if "cache" in args.only:
        parts.append(await perf_phases.cache_hit(load, sizes.cache))
    if "redis" in args.only:
        parts.append(await commands_per_job(load, run.redis, sizes.redis))
    if "throughput" in args.only:
        parts.append(await throughput(load, run, sizes.throughput_s))
    if not {"capacity", "overload", "soak"} & set(args.only):
        return parts
    long = await load.calibrate_direct(*LONG, TOKENS, calls=4)
    answer_ms = statistics.median(long.direct_ms)
    capacity = max_jobs * 1000 / answer_ms  # until measured
    if "capacity" in args.only:
        redis_pid = int((await run.redis.info("server"))["process_id"])
        every = {**pids, "test LLM": run.stack.procs["testllm"].pid, "redis-server": redis_pid}
        cpu = CpuUse.start({**every, "load generator (this benchmark)": os.getpid()})
        profiles = await perf_profile.start(run.stack, pids, sizes.capacity_s)
        phase = await perf_capacity.offer(load, "capacity", args.capacity_rate, sizes.capacity_s)
        lines = await perf_profile.finish(profiles, sizes.capacity_s, args.section)
        used = cpu.report(
            sum(1 for s in phase.accepted() if (s.job or {}).get("status") == "completed")
        )
        part, measured = perf_capacity.capacity_part(phase, max_jobs, answer_ms, lines, used)
        parts.append(part)
        capacity = capacity if math.isnan(measured) or measured <= 0 else measured
    if "overload" in args.only:
        low_rate = min(LOW_RATE, LOW_SHARE * capacity)
        low = await perf_capacity.offer(load, "unloaded", low_rate, sizes.low_jobs / low_rate)
        rate = perf_capacity.OVERLOAD_FACTOR * capacity
        over = await perf_capacity.offer(load, "overload", rate, sizes.overload_s)
        parts.append(perf_capacity.overload_part(low, over))
    if "soak" in args.only and soak_s > 0:
        parts.append(await perf_capacity.soak(load, pids, capacity / 2, soak_s))
    return parts


async def run(args: argparse.Namespace, stacks: list[Stack]) -> int:
    """One run: own Redis and stack, 20 pages indexed, a warm-up, the phases, the report."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    overrides = parse_overrides(args.env, DEFAULTS)
    docs = pages()
    async with session("perf", args.keep_logs, stacks, own_redis=True) as bench_run:
        stack = bench_run.stack
        key = await bench_run.start_stack(overrides)
        timeout = httpx.Timeout(60.0, connect=10.0, pool=60.0)
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            oai = openai.AsyncOpenAI(base_url=f"{stack.llm_url}/v1", api_key="x", max_retries=0)
            try:
                load = PerfLoad(
                    client, oai, stack.url, stack.llm_url, key, bases=load_questions(docs)
                )
                await load.ingest(docs)
                await load.warm_up()
                parts = await phases(args, bench_run, load)
            finally:
                await oai.close()
        load_after = os.getloadavg()
        await stack.stop()
        env = bench_run.shown_env()
        env["RAGQ_REDIS_URL"] = "<own redis-server>/0"
        report = Run(
            command=command(),
            commit=git_commit(),
            dirty=dirty(),
            started=started,
            elapsed_s=time.perf_counter() - t0,
            machine=machine_info(bench_run.redis_version),
            env=env,
            settings=effective_settings(stack.env, SETTINGS),
            load_before=load_before,
            load_after=load_after,
            docs=docs,
            bases=len(load.bases),
            phases=list(args.only),
            note=args.note,
            findings=log_findings(
                p for p in bench_run.log_paths() if not p.stem.startswith("pyspy-")
            ),
        )
        section = markdown(report, parts, args.section, args.title)
        print(section)
        failures = [f"{f.phase} #{f.index}: {f.detail}" for f in load.results.failures]
        rc = publish(section, failures, args)
        bench_run.ok = rc == 0
        log(f"run took {(time.perf_counter() - t0) / 60:.1f} min")
        return rc


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The perf benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--only",
        default=",".join(PHASES),
        help=f"comma-separated phases to run (default all: {','.join(PHASES)})",
    )
    parser.add_argument("--quick", action="store_true", help="shrink every phase (a smoke run)")
    parser.add_argument(
        "--soak-s",
        type=float,
        default=600.0,
        help="seconds of the soak phase (0 skips it; --quick: at most 10)",
    )
    parser.add_argument(
        "--capacity-rate", type=float, default=48.0, help="jobs/s offered in the capacity phase"
    )
    add_report_arguments(parser, "perf", "Performance figures side by side")
    args = parser.parse_args(argv)
    args.only = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(args.only) - set(PHASES))
    if unknown or not args.only:
        parser.error(f"--only takes phases of {', '.join(PHASES)}; not {unknown}")
    args.only = [p for p in PHASES if p in args.only]
    if args.soak_s < 0 or args.capacity_rate <= 0:
        parser.error("--soak-s must be ≥ 0 and --capacity-rate positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 published, 1 failures in the run, 2 no stack."""
    return run_benchmark(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
