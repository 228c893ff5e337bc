"""Generated answers on the deploy evaluation set: each local model against the extractive
answers, through a whole stack (`scripts/eval_gate.py`), with what each model costs.

For every answerer it runs `eval_gate.py --llm none|local --local-model M --mrr-depth 5
--threshold 0` (top_k 5: the answer a client gets with the API's default) and keeps its
JSON report; for every model it also starts llama.cpp alone once to note its start-up time
and peak RSS after one answer. Then it replaces the `eval:generated` section of
docs/EVAL.md. Slow: about 45 minutes for both Qwen models on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from scripts.bench.reportfile import git_commit, markers, table, write_section
from scripts.harness import ROOT
from scripts.localllm.catalog import MODELS

SECTION = markers("generated", "eval")
PROMPT = [{"role": "user", "content": "Name one colour of the rainbow."}]


def run_gate(answerer: str, redis_url: str, out: Path, sample: int | None) -> dict[str, Any]:
    """One gate run; its JSON report and wall time."""
    argv = [sys.executable, "scripts/eval_gate.py", "--redis-url", redis_url]
    argv += ["--llm", "none"] if answerer == "extractive" else ["--llm", "local"]
    argv += [] if answerer == "extractive" else ["--local-model", answerer]
    argv += ["--mrr-depth", "5", "--threshold", "0", "--json-out", str(out)]
    argv += ["--sample", str(sample)] if sample else []
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.exists():
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"the gate failed for {answerer} (exit {done.returncode})")
    print(done.stdout)
    report: dict[str, Any] = json.loads(out.read_text())
    report["wall_s"] = time.perf_counter() - started
    return report


def engine_costs(name: str) -> dict[str, float]:
    """llama.cpp alone on the model: seconds to READY, peak RSS (MiB) after one answer."""
    started = time.perf_counter()
    argv = [sys.executable, "-m", "scripts.localllm", "serve", "--model", name]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[1]
        ready_s = time.perf_counter() - started
        body = {"model": name, "messages": PROMPT, "max_tokens": 16}
        httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).raise_for_status()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peak_kb = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmHWM"))
    finally:
        proc.terminate()
        proc.wait(30)
    return {"ready_s": ready_s, "rss_mib": peak_kb / 1024}


def _row(answerer: str, report: dict[str, Any], costs: dict[str, float] | None) -> list[str]:
    o = report["overall"]
    latency = o["latency_mean_s"], o["latency_p95_s"]
    cells = [
        answerer if answerer == "extractive" else f"{MODELS[answerer].title}",
        str(o["questions"]),
        str(o["generated"]),
        f"{o['keyword_hit_rate']:.3f}",
        "—" if not o["generated"] else f"{o['generated_keyword_hit_rate']:.3f}",
        "—" if not o["generated"] else f"{o['valid_citation_rate']:.3f}",
        "—" if not o["generated"] else f"{o['attributed_rate']:.3f}",
        f"{latency[0]:.1f} / {latency[1]:.1f}",
        f"{report['wall_s'] / 60:.1f}",
        "—" if costs is None else f"{MODELS[answerer].size / 1e6:.0f} MB",
        "—" if costs is None else f"{costs['rss_mib']:.0f} MiB",
        "—" if costs is None else f"{costs['ready_s']:.1f}",
    ]
    return cells


def markdown(rows: list[list[str]], command: str) -> str:
    commit = git_commit()
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    cols = [
        "answerer",
        "questions",
        "generated",
        "kw hit (all)",
        "kw hit (generated)",
        "valid citations (generated)",
        "of them added by ragq",
        "latency mean / p95 s",
        "run min",
        "weights",
        "peak RSS",
        "ready s",
    ]
    return "\n".join(
        [
            SECTION[0],
            "## Generated answers: local models vs extractive",
            "",
            f"Command: `{command}` (commit `{commit}`, {when} UTC, 2-core x86_64, nothing else"
            " running). Each row is one `scripts/eval_gate.py` run over the sample set with"
            " top_k 5; *generated* are the answers the model wrote (not degraded); *valid"
            " citations*: the answer has at least one `[n]` marker and every marker names a"
            " passage it was given; *added by ragq*: of the generated answers, the share that"
            " cited nothing and whose markers ragq added, every sentence being found in a"
            " passage (API.md `added_markers`). Weights, peak RSS and ready s are llama.cpp's"
            " alone.",
            "",
            *table(cols, rows),
            SECTION[1],
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--answerers",
        default="extractive,qwen2.5-0.5b,qwen2.5-1.5b",
        help="comma list; NAME:N asks that answerer N questions spread over the set",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--sample", type=int, help="only N questions (a quick look)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "EVAL.md"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for entry in args.answerers.split(","):
            answerer, _, only = entry.partition(":")  # "model:N": N questions of the set
            sample = int(only) if only else args.sample
            report = run_gate(answerer, args.redis_url, Path(tmp) / f"{answerer}.json", sample)
            costs = None if answerer == "extractive" else engine_costs(answerer)
            rows.append(_row(answerer, report, costs))
            keep = ROOT / ".venv" / f"generated-eval-{answerer}.json"
            keep.write_text(json.dumps(report, indent=1))
    section = markdown(
        rows, shlex.join(["python", "scripts/bench/generated_eval.py", *sys.argv[1:]])
    )
    print(section)
    write_section(Path(args.out), section, "generated", kind="eval", intro="# Evaluation\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
