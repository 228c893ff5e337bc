"""The benchmarks' stack: the harness's processes on Redis DB 14 (or on a redis-server of
the run's own, `session(..., own_redis=True)`), and one run's set-up and tear-down around
them.

A run flushes DB 14, starts the test LLM, one `ragq worker` and `ragq serve` with the
benchmark's settings and issues one key; on the way out it stops the processes, flushes
the DB and removes its temp dir (kept, with the logs, when the run failed or with
`--keep-logs`). SIGTERM and Ctrl-C stop a run, and its processes never outlive it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from scripts.harness import HarnessError, Stack
from scripts.harness.redisproc import OwnRedis

REDIS_URL = "redis://127.0.0.1:6379/14"  # a DB reserved for benchmarks: flushed at start and end
KEY_PREFIX = "ragqbench"
TENANT = "bench"
START_TIMEOUT_S = 180.0  # the worker loads the embedding model before its first heartbeat
STOP_TIMEOUT_S = 30.0  # SIGTERM, then SIGKILL (the worker drains up to RAGQ_WORKER_DRAIN_S)


class StackError(HarnessError):
    """The stack could not be started or prepared; the benchmark cannot run."""


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the Markdown section."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def parse_overrides(items: Iterable[str], defaults: dict[str, str] | None = None) -> dict[str, str]:
    """The `--env RAGQ_NAME=VALUE` options over the benchmark's own defaults."""
    overrides = {**(defaults or {}), **dict(item.split("=", 1) for item in items)}
    bad = [k for k in overrides if not k.startswith("RAGQ_")]
    if bad:
        raise StackError(f"--env takes RAGQ_* settings only, not {bad}")
    return overrides


def bench_env(
    overrides: dict[str, str], *, qdrant_path: Path, llm_url: str, redis_url: str = REDIS_URL
) -> dict[str, str]:
    """The children's environment: inherited minus every RAGQ_*, plus the benchmark's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGQ_")}
    env.update(
        {
            "RAGQ_REDIS_URL": redis_url,
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


@dataclass
class Session:
    """One benchmark run: its stack, its Redis connection (DB 14, or its own server's DB 0
    at `redis_url`) and its temp dir."""

    stack: Stack
    redis: Redis
    workdir: Path
    redis_version: str = ""
    redis_url: str = REDIS_URL
    ok: bool = False  # set once the section is published: the temp dir is removed then

    async def start_stack(self, overrides: dict[str, str]) -> str:
        """Start the test LLM, one worker and the API; return a key once the API is ready."""
        llm_url = await self.stack.start_llm("--host", "127.0.0.1", name="testllm")
        log(f"test LLM ready at {llm_url} (pid {self.stack.procs['testllm'].pid})")
        qdrant = self.workdir / "qdrant"
        self.stack.env = bench_env(
            overrides, qdrant_path=qdrant, llm_url=f"{llm_url}/v1", redis_url=self.redis_url
        )
        worker = await self.stack.start_worker()
        await self.stack.start_api()
        api = self.stack.procs["api"]
        log(f"ragq ready at {self.stack.url} (api pid {api.pid}, worker pid {worker.pid})")
        return await self.stack.create_key(TENANT)

    def pids(self) -> dict[str, int]:
        """Process id of every child, by name."""
        return {name: proc.pid for name, proc in self.stack.procs.items()}

    def log_paths(self) -> list[Path]:
        """The children's logs."""
        return [c.log_path for c in self.stack.children if c.log_path is not None]

    def shown_env(self) -> dict[str, str]:
        """The children's RAGQ_* settings as the report shows them (no temp paths or ports)."""
        shown = {k: v for k, v in self.stack.env.items() if k.startswith("RAGQ_")}
        shown["RAGQ_QDRANT_PATH"] = "<temp dir>"
        shown["RAGQ_LLM_BASE_URL"] = "<test LLM>/v1"
        return shown


@contextlib.asynccontextmanager
async def session(
    name: str, keep_logs: bool, stacks: list[Stack], *, own_redis: bool = False
) -> AsyncIterator[Session]:
    """A flushed DB 14 and a temp dir for one run of the benchmark `name`; always cleaned.
    With `own_redis`, a redis-server of the run's own (on a free port, its data in the temp
    dir) instead of DB 14, so that its `INFO` counts this stack's commands only."""
    workdir = Path(tempfile.mkdtemp(prefix=f"ragq-bench-{name}-"))
    server = OwnRedis(workdir / "redis") if own_redis else None
    redis_url = REDIS_URL if server is None else server.url
    redis = Redis.from_url(redis_url, decode_responses=True)
    stack = Stack(
        workdir,
        dict(os.environ),
        start_timeout_s=START_TIMEOUT_S,
        stop_timeout_s=STOP_TIMEOUT_S,
        say=log,
    )
    stacks.append(stack)
    run = Session(stack, redis, workdir, redis_url=redis_url)
    try:
        try:
            if server is not None:
                await server.start()
            await redis.ping()
        except Exception as exc:
            raise StackError(f"Redis at {redis_url} does not answer: {exc}") from exc
        await redis.flushdb()
        run.redis_version = str((await redis.info("server"))["redis_version"])
        yield run
    finally:
        await stack.stop()
        with contextlib.suppress(Exception):
            await redis.flushdb()
        await redis.aclose()
        if server is not None and server.proc is not None:
            await server.kill()  # its data is the temp dir's, removed below
        if keep_logs or not run.ok:
            log(f"logs and data in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


BenchRun = Callable[[argparse.Namespace, list[Stack]], Coroutine[Any, Any, int]]


def run_benchmark(run_fn: BenchRun, args: argparse.Namespace) -> int:
    """Run a stack benchmark: SIGTERM and Ctrl-C stop it, and its processes never outlive it."""
    stacks: list[Stack] = []

    async def guarded() -> int:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run_fn(args, stacks)

    try:
        return asyncio.run(guarded())
    except HarnessError as exc:
        log(f"the stack could not be prepared: {exc}")
        for stack in stacks:
            log(stack.log_tails())
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; processes stopped")
        return 130
    finally:
        for stack in stacks:
            stack.kill_leftovers()
