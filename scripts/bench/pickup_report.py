"""The pickup benchmark's section of docs/BENCHMARKS.md: how the run was made, the
latency distributions of each phase, the idle cost and the targets."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from scripts.bench.idle import IdleResult
from scripts.bench.pickup_samples import Calibration, CallSample, Results
from scripts.bench.reportfile import environment_line, findings_markdown, load_avg, markers
from scripts.bench.stats import DIST_HEADER, dist_row, fmt, quantile

TARGET_PICKUP_P50_MS = 10.0
TARGET_IDLE_PER_WORKER = 10.0


@dataclass
class Report:
    command: str
    commit: str
    started: datetime
    machine: dict[str, str]
    env: dict[str, str]
    settings: dict[str, str]
    rate: float
    duration: float
    docs: list[str]
    questions: int
    calibration: Calibration
    results: Results
    idle: IdleResult
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    background_rate: float
    log_findings: list[str]
    note: str
    section: str = "pickup"
    title: str = "Pickup latency, overhead over a direct LLM call, idle cost"

    def markdown(self) -> str:
        r = self.results
        cal = self.calibration
        begin, end = markers(self.section)
        lines = [
            begin,
            f"## {self.title}",
            "",
            f"Command: `{self.command}` (from the repository root).",
            "",
            f"- Run: {self.started:%Y-%m-%d %H:%M} UTC, commit `{self.commit}`"
            + (f" — {self.note}" if self.note else ""),
            f"- Machine: {self.machine['nproc']} CPUs ({self.machine['cpu']}), "
            f"{self.machine['memory']} RAM, Linux {self.machine['kernel']}, "
            f"Python {self.machine['python']}, Redis {self.machine['redis']}.",
            f"- Load average (1/5/15 min) before: {load_avg(self.load_before)}, "
            f"after: {load_avg(self.load_after)}; Redis commands/s from other clients "
            f"(other DBs) before the stack started: {self.background_rate:.0f}.",
            "- Stack: `python -m scripts.testllm --port 0`, `ragq serve`, one `ragq worker` (both "
            "queues), all as separate processes on this machine, plus this load generator.",
            environment_line(self.env, self.settings),
            f"- Data: {len(self.docs)} documents from `data/corpus/` "
            f"({', '.join(self.docs)}); {self.questions} questions from "
            "`data/deploy_eval.jsonl`, used in turn.",
            f"- Test LLM: first token {cal.first_token_ms:.0f} ms + "
            f"{cal.token_ms:.2f} ms per further token; `max_tokens={cal.tokens}` (the "
            f"shortest warm-up answer; uncapped they had {min(cal.warmup_tokens)}–"
            f"{max(cal.warmup_tokens)} tokens) on both sides, so every answer streams "
            f"{cal.tokens} tokens. A direct streaming call measured "
            f"{statistics.median(cal.direct_ms):.0f} ms median "
            f"(min {min(cal.direct_ms):.0f}, max {max(cal.direct_ms):.0f}, "
            f"n={len(cal.direct_ms)}, sequential, before the timed phases).",
            f"- Load: open loop at {self.rate:g} requests/s for {self.duration:g} s per phase "
            "(request i sent at t0 + i/rate whatever happened to earlier ones); percentiles "
            "are nearest-rank.",
            "",
            f"### Pickup latency (enqueue → job start), `POST /v1/jobs` at {self.rate:g}/s",
            "",
            DIST_HEADER,
            dist_row("`result.timings_ms.queue` (ms)", [s.queue_ms for s in r.pickup]),
            dist_row(
                "`started_at − created_at` of the job record (ms)",
                [s.record_ms for s in r.pickup],
            ),
            dist_row(
                "`POST /v1/jobs` round trip, client side (ms)", [s.enqueue_ms for s in r.pickup], 1
            ),
            dist_row("load-generator send lag (ms)", [s.lag_ms for s in r.pickup], 1),
            "",
            "`timings_ms.queue` is computed by the worker as now − `created_at` after it has "
            "read the job record and marked it started (two Redis round trips after the pickup "
            "itself); `started_at − created_at` uses the two timestamps the record stores, both "
            "with millisecond resolution (so ±1 ms). `created_at` is taken in the API just "
            "before the enqueue script runs.",
            "",
            f"### Overhead: `POST /v1/rag` through ragq vs. a direct streaming call, "
            f"each at {self.rate:g}/s, interleaved",
            "",
            DIST_HEADER,
            dist_row("ragq `POST /v1/rag` (waiting form) wall time (ms)", [s.ms for s in r.rag]),
            dist_row(
                "direct `chat.completions` stream to the test LLM (ms)", [s.ms for s in r.direct]
            ),
            "",
            "| ratio ragq / direct | p50 | p99 |",
            "|---|---:|---:|",
            f"| wall time | {_ratio(r.rag, r.direct, 0.5)} | {_ratio(r.rag, r.direct, 0.99)} |",
            "",
            f"Both sides stream the same answers: {_mean_tokens(r.rag)} vs. "
            f"{_mean_tokens(r.direct)} completion tokens on average; the direct call sends "
            "the exact prompt ragq built for the same question (captured from the test LLM "
            "during the warm-up). Where ragq's time goes, from the worker's "
            "`result.timings_ms` of the same `/v1/rag` jobs:",
            "",
            DIST_HEADER,
            *[
                dist_row(f"`{name}` (ms)", values)
                for name, values in sorted(r.stages.items(), key=lambda kv: _stage_order(kv[0]))
            ],
            dist_row("pickup `started_at − created_at` (ms)", r.rag_pickup_ms),
            "",
            *self.idle_markdown(),
            "",
            "### Targets",
            "",
            *self.targets_markdown(),
            "",
            "### What limits these figures",
            "",
            f"- The machine has {self.machine['nproc']} CPUs, shared by everything: the load "
            "generator, the API, the worker, the test LLM, Redis — and whatever else runs on it "
            "(other engineers' test suites may run at the same time; see the load average and "
            "the Redis background rate above). Latencies include CPU contention between these "
            "processes; a production deployment puts them on separate machines.",
            "- Everything talks over loopback, so network latency is ~0; real Redis and LLM "
            "round trips add to every stage.",
            "- The test LLM is an asyncio stub that sleeps per token; it does no inference, so "
            "the ratio shows ragq's overhead over an ideal 200 ms model, not a GPU's behaviour.",
            f"- Answers are short ({cal.tokens} tokens) to keep the LLM at ~200 ms; the worker "
            "writes one Redis event per token, so longer answers cost ragq more per job.",
            "- The one worker serves both queues; its idle cost covers two queue loops.",
            "- Retrieval runs against embedded Qdrant (local mode) and the embedded wordllama "
            f"model, on {len(self.docs)} small documents; bigger collections cost more.",
            f"- {len(r.pickup)} + {len(r.rag)} samples per run: p99 rests on the top few "
            "values and moves between runs.",
            "- The idle window is short (10 s); per-command counts are from MONITOR, which "
            "attributes commands to processes via their TCP ports.",
        ]
        lines += findings_markdown(self.log_findings)
        lines.append(end)
        return "\n".join(lines)

    def idle_markdown(self) -> list[str]:
        idle = self.idle
        w = idle.window_s
        worker = sum(idle.by_process.get("worker", Counter()).values())
        api = sum(idle.by_process.get("api", Counter()).values())
        stack = sum(sum(c.values()) for c in idle.by_process.values())
        by_name = ", ".join(
            f"{name} {count / w:.1f}/s"
            for name, count in idle.by_process.get("worker", Counter()).most_common()
        )
        cpu = ", ".join(f"{name} {100 * seconds / w:.1f} %" for name, seconds in idle.cpu_s.items())
        return [
            f"### Idle cost (no traffic, {w:.1f} s window)",
            "",
            "| scope | commands | commands/s |",
            "|---|---:|---:|",
            f"| whole Redis server, `INFO commandstats` Δ − 1 (our first INFO) | "
            f"{idle.info_calls} | {idle.info_calls / w:.1f} |",
            f"| ragq stack (DB 14), from MONITOR | {stack} | {stack / w:.1f} |",
            f"| — the one worker process (both queues) | {worker} | {worker / w:.1f} |",
            f"| — the API process | {api} | {api / w:.1f} |",
            f"| other Redis clients (not ours) | {idle.other_clients} | "
            f"{idle.other_clients / w:.1f} |",
            "",
            f"Worker commands by name: {by_name or 'none'}. CPU use while idle: {cpu}.",
            "The `INFO` row counts every client of this Redis server, including other "
            "projects' tests on other DBs; the MONITOR rows count only commands sent "
            "between our two INFO calls, attributed to a process by its TCP port.",
        ]

    def targets_markdown(self) -> list[str]:
        pickup = quantile([s.record_ms for s in self.results.pickup], 0.5)
        worker = sum(self.idle.by_process.get("worker", Counter()).values()) / self.idle.window_s
        return [
            "| target | measured | met |",
            "|---|---:|---|",
            f"| pickup p50 ≤ {TARGET_PICKUP_P50_MS:g} ms (`started_at − created_at`) | "
            f"{fmt(pickup)} ms | {_yes(pickup <= TARGET_PICKUP_P50_MS)} |",
            f"| idle Redis commands ≤ {TARGET_IDLE_PER_WORKER:g}/s per worker | "
            f"{worker:.1f}/s | {_yes(worker <= TARGET_IDLE_PER_WORKER)} |",
        ]


def _stage_order(name: str) -> int:
    order = ["queue", "retrieval", "llm", "total"]
    return order.index(name) if name in order else len(order)


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _ratio(a: Sequence[CallSample], b: Sequence[CallSample], q: float) -> str:
    x = quantile([s.ms for s in a], q)
    y = quantile([s.ms for s in b], q)
    return "n/a" if math.isnan(x) or math.isnan(y) or y == 0 else f"{x / y:.2f}"


def _mean_tokens(samples: Sequence[CallSample]) -> str:
    return f"{statistics.fmean(s.completion_tokens for s in samples):.1f}" if samples else "n/a"
