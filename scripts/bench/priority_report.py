"""The priority benchmark's section of docs/BENCHMARKS.md: interactive queue waits and
completions per second with and without a batch flood, and what one FIFO queue would cost."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from scripts.bench.corpus import DOCS
from scripts.bench.priority_load import SUBMIT_CONCURRENCY, Phase, Sample
from scripts.bench.reportfile import environment_line, findings_markdown, load_avg, markers
from scripts.bench.stats import fmt, quantile


def _ms(values: Sequence[float], q: float) -> str:
    return fmt(quantile(values, q))


def _row(phase: Phase, backlog: bool = True) -> str:
    queue = [s.queue_ms for s in phase.samples]
    record = [s.record_ms for s in phase.samples]
    e2e = [s.e2e_ms for s in phase.samples]
    flood = f"{phase.backlog_start} → {phase.backlog_end}" if phase.flood else "none"
    cells = [
        phase.name,
        flood if backlog else "",
        str(len(phase.samples)),
        _ms(queue, 0.5),
        _ms(queue, 0.95),
        _ms(queue, 1.0),
        _ms(record, 0.5),
        _ms(record, 0.95),
        _ms(e2e, 0.5),
        _ms(e2e, 0.95),
    ]
    return "| " + " | ".join(cells) + " |"


def _stage_row(phase: Phase) -> str:
    retrieval = [s.retrieval_ms for s in phase.samples]
    llm = [s.llm_ms for s in phase.samples]
    cpu = [f"{phase.cpu.get(name, float('nan')):.0f} %" for name in ("worker", "api", "testllm")]
    cells = [phase.name, _ms(retrieval, 0.5), _ms(retrieval, 0.95), _ms(llm, 0.5), _ms(llm, 0.95)]
    return "| " + " | ".join(cells + cpu) + " |"


@dataclass
class Report:
    command: str
    commit: str
    started: datetime
    machine: dict[str, str]
    env: dict[str, str]
    settings: dict[str, str]
    args: argparse.Namespace
    warmup: list[Sample]
    phases: dict[str, Phase]
    flood_waits: list[float]
    flood_span_s: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    log_findings: list[str]

    def table(self) -> list[str]:
        """The summary table (also printed on its own)."""
        p = self.phases
        return [
            "| interactive load | batch flood (backlog start → end) | n | queue wait p50 (ms) "
            "| p95 | max | `started_at − created_at` p50 (ms) | p95 | submit → completed p50 "
            "(ms) | p95 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            _row(p["open-idle"]),
            _row(p["open-flood"]),
            "",
            "| interactive load | batch flood (backlog start → end) | interactive jobs "
            "completed/s | n in window | queue wait p50 (ms) | p95 |",
            "|---|---|---:|---:|---:|---:|",
            *[
                f"| {ph.name} | "
                + (f"{ph.backlog_start} → {ph.backlog_end}" if ph.flood else "none")
                + f" | {ph.per_second:.2f} | {ph.counted} | "
                f"{_ms([s.queue_ms for s in ph.samples], 0.5)} | "
                f"{_ms([s.queue_ms for s in ph.samples], 0.95)} |"
                for ph in (p["closed-idle"], p["closed-flood"])
            ],
        ]

    def markdown(self) -> str:
        a = self.args
        p = self.phases
        begin, end = markers(a.section)
        llm = [s.llm_ms for s in self.warmup]
        tokens = sorted({s.tokens for ph in p.values() for s in ph.samples})
        open_idle, open_flood = p["open-idle"], p["open-flood"]
        worst = _ms([s.record_ms for s in open_flood.samples], 1.0)
        closed_idle, closed_flood = p["closed-idle"], p["closed-flood"]
        slots = self.settings.get("RAGQ_WORKER_MAX_JOBS", "?")
        lines = [
            begin,
            f"## {a.title}",
            "",
            f"Command: `{self.command}` (from the repository root).",
            "",
            f"- Run: {self.started:%Y-%m-%d %H:%M} UTC, commit `{self.commit}` (the working tree "
            "may hold uncommitted edits)" + (f" — {a.note}" if a.note else ""),
            f"- Machine: {self.machine['nproc']} CPUs (`nproc`), `{self.machine['cpu']}` "
            f"(`lscpu` model name), {self.machine['memory']} RAM, Linux "
            f"{self.machine['kernel']}, Python {self.machine['python']}, Redis "
            f"{self.machine['redis']}.",
            f"- Load average (1/5/15 min) before: {load_avg(self.load_before)}, after: "
            f"{load_avg(self.load_after)}.",
            "- Stack: `python -m scripts.testllm --port 0`, `ragq serve`, one `ragq worker` "
            "serving both queues (each queue its own arq worker with its own slots), all as "
            "separate processes on this machine, plus this load generator.",
            environment_line(self.env, self.settings),
            f"- Test LLM (slow on purpose): first token {a.first_token_ms:g} ms + "
            f"{a.token_ms:g} ms per further token, `max_tokens={a.max_tokens}`; answers had "
            f"{', '.join(map(str, tokens)) or 'n/a'} completion tokens; the LLM stage took "
            f"{_ms(llm, 0.5)} ms median in the warm-up (n={len(llm)}, sequential). The test "
            "LLM does not slow down with concurrent streams, so what the two queues share here "
            "is the worker process, the API, Redis and the 2 CPUs, not a GPU.",
            f"- Data: {len(DOCS)} documents from `data/corpus/`; questions from "
            "`data/deploy_eval.jsonl` in turn, each with a unique suffix `(#n)` so the answer "
            "cache never serves a job.",
            f"- Flood: {a.flood} `priority: batch` jobs submitted {SUBMIT_CONCURRENCY} at a time "
            f"just before the interactive load (took {open_flood.flood_submit_s:.1f} s and "
            f'{closed_flood.flood_submit_s:.1f} s). "Backlog" is the batch queue\'s `ZCARD` '
            "(queued + running) when the interactive window began and ended: the flood was "
            "still waiting during the whole window when the end figure is above the batch "
            f"slots ({slots}).",
            f"- Open loop: {a.rate:g} interactive jobs/s for {a.duration:g} s (job i sent at "
            "t0 + i/rate whatever happened to earlier ones), each followed by long poll to its "
            f"end. Closed loop: {self.clients} clients (= the interactive slots), each "
            "submitting its next interactive job as soon as the last one ended; completions "
            f"counted over {a.duration:g} s after a {a.warmup:g} s warm-up. Percentiles are "
            "nearest-rank.",
            "",
            "### Interactive queue wait, with and without a flood of batch jobs",
            "",
            *self.table()[:4],
            "",
            "`queue wait` is the worker's `result.timings_ms.queue` (now − `created_at` once it "
            "has marked the job started); `started_at − created_at` uses the job record's two "
            "millisecond timestamps; `submit → completed` is the client's view, including the "
            "~"
            f"{_ms(llm, 0.5)} ms answer.",
            "",
            "### Interactive jobs completed per second, with and without a flood",
            "",
            *self.table()[5:],
            "",
            "### Where the time went (interactive jobs of each phase)",
            "",
            "| interactive load | `retrieval` p50 (ms) | p95 | `llm` p50 (ms) | p95 | CPU: worker "
            "| API | test LLM |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *[_stage_row(ph) for ph in p.values()],
            "",
            "CPU is % of one core over the whole phase (the flood's submission included); the "
            "worker runs both queues in one process with one event loop.",
            "",
            "### What a single FIFO queue would have cost",
            "",
            f"The open-loop flood's own {len(self.flood_waits)} batch jobs waited "
            f"{_ms(self.flood_waits, 0.5)} ms median, {_ms(self.flood_waits, 0.95)} ms p95 and "
            f"{_ms(self.flood_waits, 1.0)} ms at most (`started_at − created_at`); the flood "
            f"took {self.flood_span_s:.1f} s from its first submission to its last completion. "
            "An interactive job queued behind it in one shared queue would have waited up to "
            f"that long; on its own queue it waited {worst} ms at most.",
            "",
            "### Reading",
            "",
            f"- Queue wait p95 without / with the flood: "
            f"{_ms([s.queue_ms for s in open_idle.samples], 0.95)} / "
            f"{_ms([s.queue_ms for s in open_flood.samples], 0.95)} ms (open loop). "
            f"Interactive completions/s without / with the flood: {closed_idle.per_second:.2f} / "
            f"{closed_flood.per_second:.2f} (closed loop).",
            "- The flood cannot take an interactive slot: each queue has its own arq worker with "
            "its own `max_jobs`. What the queues still share is the one worker process (its "
            "event loop, the embedding and local-Qdrant executors, the GIL) and the machine's "
            "CPUs: when the worker is busy, interactive pickup and stages slow down with it "
            "(compare the CPU and stage columns above).",
            "",
            "### What limits these figures",
            "",
            f"- {self.machine['nproc']} CPUs shared by the load generator, the API, the worker, "
            "the test LLM and Redis, and whatever else runs on the machine (other engineers' "
            "test suites may run at the same time; see the load average).",
            "- Everything talks over loopback; the test LLM sleeps per token and does no "
            "inference, so a real model's batching and GPU contention are not modelled.",
            f"- {len(open_idle.samples)} and {len(open_flood.samples)} open-loop samples: the "
            "p95 rests on a handful of values and moves between runs.",
            "- The flood is submitted once, in a burst, before the interactive load; a steady "
            "trickle of batch jobs was not measured.",
        ]
        lines += findings_markdown(self.log_findings)
        lines.append(end)
        return "\n".join(lines)

    @property
    def clients(self) -> int:
        return int(self.args.clients or self.settings.get("RAGQ_WORKER_MAX_JOBS", "32"))
