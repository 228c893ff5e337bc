"""Benchmark of job pickup latency, end-to-end overhead over a direct LLM call, and idle Redis cost.

Starts a real stack (test LLM, `ragq serve`, one `ragq worker`) on Redis DB 14, drives it
open-loop at a fixed rate, and prints (and writes to `--out`) a Markdown section with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast
from urllib.parse import urlsplit

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/14"  # a DB reserved for benchmarks: flushed at start and end
KEY_PREFIX = "ragqbench"
TENANT = "bench"
CORPUS = ROOT / "data" / "corpus"
EVAL_SET = ROOT / "data" / "deploy_eval.jsonl"
DOCS = (
    "vault-key-rotation",
    "gate-rate-limits",
    "relay-consumer-tuning",
    "atlas-rollback-runbook",
    "beacon-silences",
)
FALLBACK_QUESTIONS = (
    "How do I rotate a signing key in vault?",
    "What is gate's default rate limit?",
    "How do I tune relay consumers?",
    "How do I roll back a bad atlas deploy?",
    "How long can a beacon silence last?",
)
MAX_QUESTIONS = 10
TARGET_LLM_MS = 200.0  # one direct answer of the test LLM should take about this long
FIRST_TOKEN_MS = 60.0
IDLE_WINDOW_S = 10.0
IDLE_SETTLE_S = 3.0
START_TIMEOUT_S = 180.0  # the worker loads the embedding model before its first heartbeat
INDEX_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 60.0  # after the last scheduled request, stragglers get this long
STOP_TIMEOUT_S = 30.0  # SIGTERM, then SIGKILL (the worker drains up to RAGQ_WORKER_DRAIN_S)
RAG_TIMEOUT_S = 60.0
TARGET_PICKUP_P50_MS = 10.0
TARGET_IDLE_PER_WORKER = 10.0


def markers(section: str) -> tuple[str, str]:
    """The comment lines that delimit one section of the report file."""
    return f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"


INTRO = """# Benchmarks

Figures measured on a real ragq stack. Each section is written by one script under
`scripts/bench/`, which starts its own processes (API, worker, the test LLM from
`scripts/testllm.py`) against Redis DB 14 and replaces only its own section, between
`<!-- bench:NAME -->` markers. Re-run the script to refresh a section. The machines these
ran on are small and shared, so compare figures within one run rather than across runs.
"""


class StackError(RuntimeError):
    """The stack could not be started or prepared; the benchmark cannot run."""


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the Markdown section."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the benchmark dies without cleaning up (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _open_log(path: Path) -> TextIO:
    return path.open("w", encoding="utf-8")


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(_read_text(path).splitlines()[-lines:])


@dataclass
class Child:
    """One process the benchmark started."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


class Stack:
    """Starts processes and always stops them, in reverse order, by their own pid."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.children: list[Child] = []
        self._files: list[TextIO] = []
        self._pumps: list[asyncio.Task[None]] = []

    async def start(self, name: str, argv: Sequence[str], *, pipe_stdout: bool = False) -> Child:
        """Start `argv`; its output goes to a log file (stdout to a pipe if asked)."""
        log_path = self.workdir / f"{name}.log"
        log_file = _open_log(log_path)
        self._files.append(log_file)
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if pipe_stdout else log_file,
            stderr=log_file,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def pump(self, child: Child, log_file_name: str) -> None:
        """Keep draining a piped stdout into a log file so the child never blocks on it."""
        log_file = _open_log(self.workdir / log_file_name)
        self._files.append(log_file)
        stream = child.process.stdout
        assert stream is not None

        async def drain() -> None:
            while line := await stream.readline():
                log_file.write(line.decode(errors="replace"))
                log_file.flush()

        self._pumps.append(asyncio.create_task(drain()))

    async def stop(self) -> None:
        """SIGTERM every child (last started first), SIGKILL any that outlive the timeout."""
        for child in reversed(self.children):
            if not child.alive:
                continue
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(child.process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                log(f"{child.name} (pid {child.pid}) ignored SIGTERM; killing it")
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                await child.process.wait()
        for task in self._pumps:
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        for f in self._files:
            f.close()

    def kill_leftovers(self) -> None:
        """Last resort when the event loop is gone: SIGKILL children that may still run."""
        for child in self.children:
            if child.alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(child.pid, signal.SIGKILL)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ragq_command() -> list[str]:
    """The installed `ragq` console script, next to this interpreter if possible."""
    beside = Path(sys.executable).parent / "ragq"
    found = str(beside) if beside.exists() else shutil.which("ragq")
    if not found:
        raise StackError("the `ragq` console script is not installed (activate the venv)")
    return [found]


def bench_env(overrides: dict[str, str], *, qdrant_path: Path, llm_url: str) -> dict[str, str]:
    """The children's environment: inherited minus every RAGQ_*, plus the benchmark's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGQ_")}
    env.update(
        {
            "RAGQ_REDIS_URL": REDIS_URL,
            "RAGQ_KEY_PREFIX": KEY_PREFIX,
            "RAGQ_QDRANT_PATH": str(qdrant_path),
            "RAGQ_LLM_BASE_URL": llm_url,
            "RAGQ_LOG_LEVEL": "warning",
            "RAGQ_DEFAULT_RPM": "0",  # one key sends the whole load; rate limits not measured
            "RAGQ_WORKER_METRICS_PORT": "0",
            # repeated questions would be answered from the answer cache at submit; the
            # pickup and overhead figures are about jobs that run
            "RAGQ_ANSWER_CACHE_TTL_S": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


# --------------------------------------------------------------------------- statistics


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (q in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def fmt(value: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def dist_row(label: str, values: Sequence[float], digits: int = 0) -> str:
    cells = [fmt(quantile(values, q), digits) for q in (0.5, 0.9, 0.99, 1.0)]
    return f"| {label} | {len(values)} | " + " | ".join(cells) + " |"


DIST_HEADER = "| measure | n | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|---:|"


# --------------------------------------------------------------------------- samples


@dataclass
class Failure:
    phase: str
    index: int
    detail: str


@dataclass
class PickupSample:
    queue_ms: float  # result.timings_ms.queue, written by the worker
    record_ms: float  # started_at - created_at of the job record
    enqueue_ms: float  # POST /v1/jobs round trip seen by the client
    lag_ms: float  # how late the load generator sent it


@dataclass
class CallSample:
    ms: float
    completion_tokens: int
    lag_ms: float
    job_id: str | None = None


@dataclass
class Calibration:
    first_token_ms: float
    token_ms: float
    tokens: int  # every answer is capped at this many tokens (max_tokens)
    warmup_tokens: list[int]
    direct_ms: list[float]


@dataclass
class IdleResult:
    window_s: float
    info_calls: int  # INFO commandstats difference minus our own first INFO
    by_process: dict[str, Counter[str]]
    other_clients: int
    cpu_s: dict[str, float]


@dataclass
class Results:
    pickup: list[PickupSample] = field(default_factory=list)
    rag: list[CallSample] = field(default_factory=list)
    direct: list[CallSample] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)
    rag_pickup_ms: list[float] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _problem(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:300]}"


# --------------------------------------------------------------------------- the benchmark


class Bench:
    """Drives one stack: setup, calibration, the two timed phases and the idle window."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        oai: openai.AsyncOpenAI,
        api_url: str,
        llm_url: str,
        key: str,
    ) -> None:
        self.client = client
        self.oai = oai
        self.api = api_url
        self.llm = llm_url
        self.auth = {"Authorization": f"Bearer {key}"}
        self.model = ""
        self.questions: list[str] = []
        self.prompts: dict[str, list[dict[str, Any]]] = {}
        self.max_tokens = 512  # lowered to the shortest warm-up answer by `calibrate`
        self.results = Results()

    # ---- setup

    async def ingest(self, doc_ids: Iterable[str]) -> None:
        """Post the documents, then wait until every one is `indexed`."""
        manifest = load_manifest()
        ids = list(doc_ids)
        for doc_id in ids:
            text = read_doc(doc_id)
            title = manifest.get(doc_id, doc_id)
            body = {"id": doc_id, "title": title, "text": text}
            r = await self.client.post(f"{self.api}/v1/documents", json=body, headers=self.auth)
            if r.status_code != 202:
                raise StackError(f"ingest of {doc_id} failed: {_problem(r)}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + INDEX_TIMEOUT_S
        for doc_id in ids:
            while True:
                r = await self.client.get(f"{self.api}/v1/documents/{doc_id}", headers=self.auth)
                status = r.json().get("status") if r.status_code == 200 else _problem(r)
                if status == "indexed":
                    break
                if status not in ("queued", "indexing"):
                    raise StackError(f"document {doc_id} did not index: {status} {r.text[:300]}")
                if loop.time() > deadline:
                    raise StackError(f"document {doc_id} still {status} after {INDEX_TIMEOUT_S} s")
                await asyncio.sleep(0.2)
        log(f"indexed {len(ids)} documents: {', '.join(ids)}")

    async def capture_prompts(self) -> list[int]:
        """One sequential `/v1/rag` per question (also a warm-up); keep the prompt ragq sent."""
        r = await self.client.get(f"{self.llm}/v1/models")
        self.model = r.json()["data"][0]["id"]
        tokens: list[int] = []
        for question in self.questions:
            r = await self.client.post(
                f"{self.api}/v1/rag", json={"question": question}, headers=self.auth
            )
            if r.status_code != 200:
                raise StackError(f"warm-up /v1/rag failed: {_problem(r)}")
            answer = r.json()
            if answer.get("degraded"):
                raise StackError(f"warm-up answer was degraded: {answer.get('degraded_reason')}")
            stats = (await self.client.get(f"{self.llm}/_stats")).json()
            self.prompts[question] = stats["last_request"]["messages"]
            tokens.append(int(answer["usage"]["completion_tokens"]))
        return tokens

    def body(self, question: str) -> dict[str, Any]:
        """The job body of the timed phases."""
        return {"question": question, "max_tokens": self.max_tokens}

    async def control(self, **changes: float) -> None:
        r = await self.client.post(f"{self.llm}/_control", json=changes)
        if r.status_code != 200:
            raise StackError(f"test LLM /_control failed: {_problem(r)}")

    async def direct_call(self, question: str) -> tuple[float, int]:
        """One streaming chat completion straight to the test LLM, consumed to the end."""
        started = time.perf_counter()
        stream = await self.oai.chat.completions.create(
            model=self.model,
            messages=cast(list[ChatCompletionMessageParam], self.prompts[question]),
            max_tokens=self.max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        tokens = 0
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
        return (time.perf_counter() - started) * 1000, tokens

    async def calibrate(self, tokens: list[int]) -> Calibration:
        """Pick latencies so one direct answer takes about TARGET_LLM_MS, and confirm it.

        Answers are capped at the shortest warm-up answer's length (`max_tokens`, on both
        sides), so every answer has the same number of tokens and takes the same time.
        """
        self.max_tokens = max(1, min(tokens))
        first = FIRST_TOKEN_MS
        per_token = max(0.0, (TARGET_LLM_MS - first) / max(self.max_tokens - 1, 1))
        measured: list[float] = []
        for attempt in range(1, 4):
            await self.control(first_token_latency_ms=first, token_latency_ms=per_token)
            measured = []
            for _ in range(2):
                for question in self.questions:
                    ms, _ = await self.direct_call(question)
                    measured.append(ms)
            median = statistics.median(measured)
            log(
                f"calibration {attempt}: first token {first:.0f} ms + {per_token:.2f} ms/token x "
                f"({self.max_tokens} tokens) -> direct call median {median:.1f} ms "
                f"(min {min(measured):.1f}, max {max(measured):.1f}, n={len(measured)})"
            )
            if abs(median - TARGET_LLM_MS) <= 0.05 * TARGET_LLM_MS or median <= first:
                break
            per_token *= (TARGET_LLM_MS - first) / (median - first)
        return Calibration(first, per_token, self.max_tokens, tokens, measured)

    # ---- timed phases

    async def open_loop(
        self, schedule: list[tuple[float, Callable[[float], Coroutine[Any, Any, None]]]], phase: str
    ) -> None:
        """Start each request at its offset whatever happened to earlier ones, then drain."""
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.2
        tasks: list[asyncio.Task[None]] = []
        try:
            for offset, request in sorted(schedule, key=lambda item: item[0]):
                delay = start + offset - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(request(start + offset)))
            _, pending = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT_S)
        finally:  # on a drain timeout, or when the benchmark itself is cancelled
            unfinished = [task for task in tasks if not task.done()]
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        if pending:
            self.fail(
                phase,
                -1,
                f"{len(pending)} request(s) unfinished {DRAIN_TIMEOUT_S:g} s "
                "after the last send (cancelled)",
            )

    def fail(self, phase: str, index: int, detail: str) -> None:
        self.results.failures.append(Failure(phase, index, detail))
        log(f"FAILURE {phase} #{index}: {detail}")

    async def wait_job(self, job: dict[str, Any]) -> dict[str, Any]:
        """Long-poll a job until it is terminal."""
        while job["status"] not in ("completed", "failed", "cancelled"):
            r = await self.client.get(
                f"{self.api}/v1/jobs/{job['id']}", params={"wait": 30}, headers=self.auth
            )
            if r.status_code != 200:
                raise RuntimeError(f"GET job: {_problem(r)}")
            job = r.json()
        return job

    async def pickup_request(self, index: int, scheduled: float) -> None:
        loop = asyncio.get_running_loop()
        lag_ms = (loop.time() - scheduled) * 1000
        question = self.questions[index % len(self.questions)]
        try:
            sent = time.perf_counter()
            r = await self.client.post(
                f"{self.api}/v1/jobs", json=self.body(question), headers=self.auth
            )
            enqueue_ms = (time.perf_counter() - sent) * 1000
            if r.status_code != 202:
                raise RuntimeError(f"POST /v1/jobs: {_problem(r)}")
            job = await self.wait_job(r.json())
            if job["status"] != "completed":
                raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
            result = job["result"]
            if result.get("degraded"):
                raise RuntimeError(f"job {job['id']} degraded: {result.get('degraded_reason')}")
            record_ms = (_epoch(job["started_at"]) - _epoch(job["created_at"])) * 1000
            sample = PickupSample(
                float(result["timings_ms"]["queue"]), record_ms, enqueue_ms, lag_ms
            )
            self.results.pickup.append(sample)
        except Exception as exc:
            self.fail("pickup", index, f"{type(exc).__name__}: {exc}")

    async def rag_request(self, index: int, scheduled: float) -> None:
        loop = asyncio.get_running_loop()
        lag_ms = (loop.time() - scheduled) * 1000
        question = self.questions[index % len(self.questions)]
        try:
            sent = time.perf_counter()
            r = await self.client.post(
                f"{self.api}/v1/rag",
                json={**self.body(question), "timeout": RAG_TIMEOUT_S},
                headers=self.auth,
            )
            if r.status_code != 200:
                raise RuntimeError(f"POST /v1/rag: {_problem(r)}")
            body = r.json()  # read in full above: the wall time ends here
            ms = (time.perf_counter() - sent) * 1000
            if body.get("degraded"):
                raise RuntimeError(f"job {body['job_id']} degraded: {body.get('degraded_reason')}")
            tokens = int(body["usage"]["completion_tokens"])
            self.results.rag.append(CallSample(ms, tokens, lag_ms, body["job_id"]))
        except Exception as exc:
            self.fail("rag", index, f"{type(exc).__name__}: {exc}")

    async def direct_request(self, index: int, scheduled: float) -> None:
        loop = asyncio.get_running_loop()
        lag_ms = (loop.time() - scheduled) * 1000
        question = self.questions[index % len(self.questions)]
        try:
            ms, tokens = await self.direct_call(question)
            self.results.direct.append(CallSample(ms, tokens, lag_ms))
        except Exception as exc:
            self.fail("direct", index, f"{type(exc).__name__}: {exc}")

    async def run_pickup(self, rate: float, duration: float) -> None:
        n = max(1, round(rate * duration))
        log(f"pickup phase: {n} x POST /v1/jobs at {rate:g}/s, open loop")
        schedule: list[tuple[float, Callable[[float], Coroutine[Any, Any, None]]]] = [
            (i / rate, _bind(self.pickup_request, i)) for i in range(n)
        ]
        await self.open_loop(schedule, "pickup")

    async def run_overhead(self, rate: float, duration: float) -> None:
        n = max(1, round(rate * duration))
        log(
            f"overhead phase: {n} x POST /v1/rag and {n} x direct streaming calls, "
            f"each at {rate:g}/s, interleaved (half a period apart), open loop"
        )
        schedule: list[tuple[float, Callable[[float], Coroutine[Any, Any, None]]]] = []
        for i in range(n):
            schedule.append((i / rate, _bind(self.rag_request, i)))
            schedule.append(((i + 0.5) / rate, _bind(self.direct_request, i)))
        await self.open_loop(schedule, "overhead")
        await self.collect_stages()

    async def collect_stages(self) -> None:
        """Read the worker's stage timings of every `/v1/rag` job of the overhead phase."""
        stages: dict[str, list[float]] = {}
        for sample in self.results.rag:
            r = await self.client.get(f"{self.api}/v1/jobs/{sample.job_id}", headers=self.auth)
            if r.status_code != 200:
                self.fail("stages", -1, f"GET job {sample.job_id}: {_problem(r)}")
                continue
            job = r.json()
            for name, value in (job["result"] or {}).get("timings_ms", {}).items():
                stages.setdefault(name, []).append(float(value))
            if job.get("started_at"):
                started = _epoch(job["started_at"]) - _epoch(job["created_at"])
                self.results.rag_pickup_ms.append(started * 1000)
        self.results.stages = stages


def _bind(
    method: Callable[[int, float], Coroutine[Any, Any, None]], index: int
) -> Callable[[float], Coroutine[Any, Any, None]]:
    def request(scheduled: float) -> Coroutine[Any, Any, None]:
        return method(index, scheduled)

    return request


# --------------------------------------------------------------------------- corpus


def load_manifest() -> dict[str, str]:
    """Document id -> title, from data/corpus/manifest.jsonl."""
    titles: dict[str, str] = {}
    path = CORPUS / "manifest.jsonl"
    for line in _read_text(path).splitlines():
        if line.strip():
            entry = json.loads(line)
            titles[entry["id"]] = entry.get("title") or entry["id"]
    return titles


def read_doc(doc_id: str) -> str:
    return (CORPUS / f"{doc_id}.md").read_text(encoding="utf-8")


def load_questions(doc_ids: Sequence[str]) -> list[str]:
    """Questions of the eval set that only need the ingested documents."""
    wanted = set(doc_ids)
    questions: list[str] = []
    for line in _read_text(EVAL_SET).splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        if set(entry.get("expected_doc_ids") or ()) <= wanted and entry.get("question"):
            questions.append(entry["question"])
    return questions[:MAX_QUESTIONS] or list(FALLBACK_QUESTIONS)


# --------------------------------------------------------------------------- Redis, idle cost


def _redis_address() -> tuple[str, int]:
    parts = urlsplit(REDIS_URL)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def total_calls(commandstats: dict[str, Any]) -> int:
    """Sum of `calls` over every command in an `INFO commandstats` reply."""
    return sum(int(v["calls"]) for k, v in commandstats.items() if k.startswith("cmdstat_"))


def ports_of(children: dict[str, int]) -> dict[int, str]:
    """Local TCP port -> child name, from /proc (sockets the children hold open)."""
    inodes: dict[int, str] = {}
    for name, pid in children.items():
        fd_dir = Path(f"/proc/{pid}/fd")
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes[int(target[8:-1])] = name
    ports: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in _read_text(Path(table)).splitlines()[1:]:
            cols = line.split()
            if len(cols) > 9 and int(cols[9]) in inodes:
                ports[int(cols[1].rsplit(":", 1)[1], 16)] = inodes[int(cols[9])]
    return ports


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    text = _read_text(Path(f"/proc/{pid}/stat"))
    if not text:
        return math.nan
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


MONITOR_LINE = re.compile(r'^\+?(\d+\.\d+) \[(\d+) ([^\]]+)\] "([^"]*)"')


async def measure_idle(redis: Redis, children: dict[str, int], window_s: float) -> IdleResult:
    """Redis commands issued by an idle stack: INFO commandstats, attributed with MONITOR."""
    me = (await redis.client_info())["addr"]
    host, port = _redis_address()
    reader, writer = await asyncio.open_connection(host, port, limit=2**24)
    lines: list[str] = []
    try:
        writer.write(b"MONITOR\r\n")
        await writer.drain()
        if (await reader.readline()).strip() != b"+OK":
            raise StackError("Redis refused MONITOR")

        async def collect() -> None:
            while line := await reader.readline():
                lines.append(line.decode(errors="replace").rstrip("\r\n"))

        collector = asyncio.create_task(collect())
        cpu_before = {name: cpu_seconds(pid) for name, pid in children.items()}
        before = total_calls(await redis.info("commandstats"))
        t0 = time.perf_counter()
        await asyncio.sleep(window_s)
        after = total_calls(await redis.info("commandstats"))
        elapsed = time.perf_counter() - t0
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in children.items()}
        ports = ports_of(children)
        await asyncio.sleep(0.3)  # let MONITOR deliver the last lines
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    # Count what happened between our two INFO calls, as MONITOR saw it.
    by_process: dict[str, Counter[str]] = {}
    other = 0
    inside = False
    for line in lines:
        m = MONITOR_LINE.match(line)
        if not m:
            continue
        _, _db, addr, command = m.groups()
        command = command.upper()
        if addr == me:
            if command == "INFO":
                if inside:
                    break
                inside = True
            continue
        if not inside:
            continue
        client_port = int(addr.rsplit(":", 1)[1]) if ":" in addr else -1
        owner = "lua" if addr == "lua" else ports.get(client_port)
        if owner is None:
            other += 1
        else:
            by_process.setdefault(owner, Counter())[command] += 1
    # INFO counts a command once it has run, so our first INFO is in `after`, the second not.
    return IdleResult(elapsed, after - before - 1, by_process, other, cpu)


# --------------------------------------------------------------------------- report


def machine_info(redis_version: str) -> dict[str, str]:
    cpuinfo = _read_text(Path("/proc/cpuinfo"))
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        platform.processor() or "unknown",
    )
    meminfo = _read_text(Path("/proc/meminfo"))
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


def git_commit() -> str:
    """The checked-out commit (read-only git call); the tree may also hold uncommitted edits."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


PICKUP_SETTINGS = ("worker_poll_s", "worker_max_jobs", "heartbeat_s", "lock_ttl_s", "llm_timeout_s")


def effective_settings(
    env: dict[str, str], names: Sequence[str] = PICKUP_SETTINGS
) -> dict[str, str]:
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
            f"- Load average (1/5/15 min) before: {_load(self.load_before)}, "
            f"after: {_load(self.load_after)}; Redis commands/s from other clients "
            f"(other DBs) before the stack started: {self.background_rate:.0f}.",
            "- Stack: `scripts/testllm.py --port 0`, `ragq serve`, one `ragq worker` (both "
            "queues), all as separate processes on this machine, plus this load generator.",
            "- Environment: "
            + ", ".join(f"`{k}={v}`" for k, v in sorted(self.env.items()))
            + "; effective: "
            + ", ".join(f"`{k}={v}`" for k, v in self.settings.items())
            + ".",
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
        if self.log_findings:
            lines += ["", "### Warnings and errors in the stack's logs", ""]
            lines += [f"- `{finding}`" for finding in self.log_findings]
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


def _load(values: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def _ratio(a: Sequence[CallSample], b: Sequence[CallSample], q: float) -> str:
    x = quantile([s.ms for s in a], q)
    y = quantile([s.ms for s in b], q)
    return "n/a" if math.isnan(x) or math.isnan(y) or y == 0 else f"{x / y:.2f}"


def _mean_tokens(samples: Sequence[CallSample]) -> str:
    return f"{statistics.fmean(s.completion_tokens for s in samples):.1f}" if samples else "n/a"


def write_section(path: Path, section: str, name: str) -> None:
    """Create the file with an intro if missing; replace or append this benchmark's section."""
    text = _read_text(path) or INTRO
    begin, end = markers(name)
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
        for line in _read_text(path).splitlines():
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


# --------------------------------------------------------------------------- main


async def start_stack(stack: Stack, overrides: dict[str, str], workdir: Path) -> tuple[str, str]:
    """Start the test LLM, the API and one worker; return (api_url, llm_url) once ready."""
    testllm = await stack.start(
        "testllm",
        [
            sys.executable,
            str(ROOT / "scripts" / "testllm.py"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        pipe_stdout=True,
    )
    assert testllm.process.stdout is not None
    try:
        line = await asyncio.wait_for(testllm.process.stdout.readline(), 30)
    except TimeoutError:
        line = b""
    text = line.decode().strip()
    if not text.startswith("READY "):
        raise StackError(f"test LLM did not start: {text!r}\n{_tail(testllm.log_path)}")
    llm_url = text.split(" ", 1)[1]
    stack.pump(testllm, "testllm.stdout.log")
    log(f"test LLM ready at {llm_url} (pid {testllm.pid})")

    stack.env = bench_env(overrides, qdrant_path=workdir / "qdrant", llm_url=f"{llm_url}/v1")
    port = free_port()
    ragq = ragq_command()
    api = await stack.start("api", [*ragq, "serve", "--port", str(port)])
    worker = await stack.start("worker", [*ragq, "worker"])
    api_url = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=5) as probe:
        while True:
            for child in (api, worker):
                if not child.alive:
                    raise StackError(
                        f"{child.name} exited with {child.process.returncode}:\n"
                        f"{_tail(child.log_path)}"
                    )
            with contextlib.suppress(httpx.HTTPError):
                r = await probe.get(f"{api_url}/readyz")
                if r.status_code == 200:
                    break
            if loop.time() > deadline:
                raise StackError(
                    f"/readyz not 200 after {START_TIMEOUT_S:g} s\napi:\n{_tail(api.log_path)}"
                    f"\nworker:\n{_tail(worker.log_path)}"
                )
            await asyncio.sleep(0.25)
    log(f"ragq ready at {api_url} (api pid {api.pid}, worker pid {worker.pid})")
    return api_url, llm_url


async def create_key(env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *ragq_command(),
        "keys",
        "create",
        "--tenant",
        TENANT,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    lines = out.decode().strip().splitlines()
    if process.returncode != 0 or len(lines) != 1:
        raise StackError(f"ragq keys create failed ({process.returncode}): {err.decode()[-500:]}")
    return lines[0].strip()


async def background_rate(redis: Redis, seconds: float = 2.0) -> float:
    """Commands/s other clients send to this Redis server before our stack runs."""
    before = total_calls(await redis.info("commandstats"))
    await asyncio.sleep(seconds)
    after = total_calls(await redis.info("commandstats"))
    return (after - before - 1) / seconds


async def run(args: argparse.Namespace, stack_box: list[Stack]) -> int:
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    overrides = dict(item.split("=", 1) for item in args.env)
    bad = [k for k in overrides if not k.startswith("RAGQ_")]
    if bad:
        raise StackError(f"--env takes RAGQ_* settings only, not {bad}")
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    workdir = Path(tempfile.mkdtemp(prefix="ragq-bench-pickup-"))
    stack = Stack(workdir, dict(os.environ))
    stack_box.append(stack)
    ok = False
    try:
        try:
            await redis.ping()
        except Exception as exc:
            raise StackError(f"Redis at {REDIS_URL} does not answer: {exc}") from exc
        await redis.flushdb()
        redis_version = str((await redis.info("server"))["redis_version"])
        bg_rate = await background_rate(redis)
        if (ROOT / ".env").exists():
            log("note: a .env file exists in the repository root; it applies where not overridden")

        api_url, llm_url = await start_stack(stack, overrides, workdir)
        key = await create_key(stack.env)
        limit = max(100, math.ceil(args.rate * 40))
        timeout = httpx.Timeout(RAG_TIMEOUT_S + 15, connect=5.0, pool=10.0)
        limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            oai = openai.AsyncOpenAI(base_url=f"{llm_url}/v1", api_key="x", max_retries=0)
            try:
                bench = Bench(client, oai, api_url, llm_url, key)
                bench.questions = load_questions(DOCS)
                await bench.ingest(DOCS)
                tokens = await bench.capture_prompts()
                log(f"warm-up: {len(tokens)} questions, completion tokens {tokens}")
                calibration = await bench.calibrate(tokens)
                await bench.run_pickup(args.rate, args.duration)
                await bench.run_overhead(args.rate, args.duration)
                log(f"idle phase: {IDLE_SETTLE_S:g} s settle, then a {IDLE_WINDOW_S:g} s window")
                await asyncio.sleep(IDLE_SETTLE_S)
                children = {c.name: c.pid for c in stack.children if c.name in ("api", "worker")}
                idle = await measure_idle(redis, children, IDLE_WINDOW_S)
            finally:
                await oai.close()
        load_after = os.getloadavg()
        await stack.stop()
        findings = log_findings(c.log_path for c in stack.children)
        shown_env = {k: v for k, v in stack.env.items() if k.startswith("RAGQ_")}
        shown_env["RAGQ_QDRANT_PATH"] = "<temp dir>"
        shown_env["RAGQ_LLM_BASE_URL"] = "<test LLM>/v1"
        report = Report(
            command=shlex.join(["python", *sys.argv]),
            commit=git_commit(),
            started=started,
            machine=machine_info(redis_version),
            env=shown_env,
            settings=effective_settings(stack.env),
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
            log_findings=findings,
            note=args.note,
            section=args.section,
            title=args.title,
        )
        section = report.markdown()
        print(section)
        failures = [f"{f.phase} #{f.index}: {f.detail}" for f in bench.results.failures]
        rc = publish(section, failures, args)
        ok = rc == 0
        return rc
    finally:
        await tear_down(stack, redis, workdir, keep=not ok or args.keep_logs)


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


async def tear_down(stack: Stack, redis: Redis, workdir: Path, *, keep: bool) -> None:
    """Stop the stack, empty and close the benchmark's Redis DB, remove or keep the logs."""
    await stack.stop()
    with contextlib.suppress(Exception):
        await redis.flushdb()
    await redis.aclose()
    if keep:
        log(f"logs and data in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
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


BenchRun = Callable[[argparse.Namespace, list["Stack"]], Coroutine[Any, Any, int]]


def run_benchmark(run_fn: BenchRun, args: argparse.Namespace) -> int:
    """Run a stack benchmark: SIGTERM and Ctrl-C stop it, and its processes never outlive it."""
    stack_box: list[Stack] = []

    async def guarded() -> int:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run_fn(args, stack_box)

    try:
        return asyncio.run(guarded())
    except StackError as exc:
        log(f"the stack could not be prepared: {exc}")
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; processes stopped")
        return 130
    finally:
        for stack in stack_box:
            stack.kill_leftovers()


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
