"""A ragq stack of real processes: the test LLM, `ragq serve` and `ragq worker`.

Every ragq process is the `ragq` command of this checkout (`python -m scripts.cli`); the
test LLM is `python -m scripts.testllm`, which prints `READY URL` once it listens. A process
is ready when it says so: the test LLM by that line, the API by `GET /readyz` answering 200
(which needs a live worker). Keys are issued with `ragq keys create`, as an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from scripts.harness.processes import (
    ROOT,
    STOP_TIMEOUT_S,
    Child,
    HarnessError,
    ProcessSet,
    free_port,
)
from scripts.harness.waiting import wait_until

RAGQ = (sys.executable, "-m", "scripts.cli")
TESTLLM = (sys.executable, "-m", "scripts.testllm")
LOCALLLM = (sys.executable, "-m", "scripts.localllm")
START_TIMEOUT_S = 120.0  # the worker loads the embedding model before its first heartbeat
KEY_TIMEOUT_S = 60.0


class Stack(ProcessSet):
    """The processes of one ragq stack; `url` and `llm_url` point at the started ones."""

    def __init__(
        self,
        logs: Path | None,
        env: dict[str, str],
        *,
        cwd: Path | None = ROOT,
        start_timeout_s: float = START_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        say: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(logs, env, cwd=cwd, stop_timeout_s=stop_timeout_s, say=say)
        self.start_timeout_s = start_timeout_s
        self.url = ""
        self.llm_url = ""

    async def spawn(self, name: str, *args: str) -> Child:
        """Start `ragq ARGS` as the process `name`."""
        return await self.start(name, [*RAGQ, *args])

    async def start_llm(self, *flags: str, name: str = "llm") -> str:
        """Start the test LLM (with `flags`) on a free port; once it prints READY, point
        the ragq processes started from now on at it, and return its base URL."""
        return await self._start_endpoint(name, [*TESTLLM, "--port", "0", *flags], "test LLM")

    async def start_local_llm(self, model: str, *flags: str, name: str = "llm") -> str:
        """Start llama.cpp on the local model `model` (`scripts/localllm/`, weights already
        fetched) like the test LLM: READY, then ragq processes started from now on use it
        (its `model` is the one they ask for)."""
        argv = [*LOCALLLM, "serve", "--model", model, "--port", "0", *flags]
        url = await self._start_endpoint(name, argv, f"llama.cpp ({model})")
        self.env["RAGQ_LLM_MODEL"] = model
        return url

    async def _start_endpoint(self, name: str, argv: list[str], what: str) -> str:
        child = await self.start(name, argv, stdout="pipe")
        assert child.process.stdout is not None
        try:
            line = await asyncio.wait_for(child.process.stdout.readline(), self.start_timeout_s)
        except TimeoutError:
            raise HarnessError(f"the {what} did not print READY in time") from None
        words = line.decode(errors="replace").split()
        if len(words) != 2 or words[0] != "READY":
            raise HarnessError(f"the {what} did not start (it printed {line!r})")
        self.pump(child)
        self.llm_url = words[1]
        self.env["RAGQ_LLM_BASE_URL"] = f"{self.llm_url}/v1"
        return self.llm_url

    async def start_worker(self, name: str = "worker") -> Child:
        """Start a worker process (both queues)."""
        return await self.spawn(name, "worker")

    async def serve(self, name: str, *, host: str | None = None, port: int | None = None) -> str:
        """Start `ragq serve` on `port` (a free one by default); its base URL once /readyz
        is 200. Several may run side by side, each under its own name."""
        port = free_port() if port is None else port
        url = f"http://{host or '127.0.0.1'}:{port}"
        await self.spawn(name, "serve", "--port", str(port), *(["--host", host] if host else []))
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:

            async def ready() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get("/readyz")).status_code == 200
                return False

            await wait_until(
                ready,
                timeout_s=self.start_timeout_s,
                failure=f"{name} was not ready",
                processes=self,
            )
        return url

    async def start_api(self, *, host: str | None = None, port: int | None = None) -> str:
        """Start the API process `api` and point `url` at it once it is ready."""
        self.url = await self.serve("api", host=host, port=port)
        return self.url

    async def create_key(self, tenant: str, *options: str) -> str:
        """Issue an API key with `ragq keys create --tenant TENANT OPTIONS`."""
        proc = await asyncio.create_subprocess_exec(
            *RAGQ,
            "keys",
            "create",
            "--tenant",
            tenant,
            *options,
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), KEY_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise HarnessError(f"ragq keys create took over {KEY_TIMEOUT_S:.0f} s") from None
        lines = out.decode().strip().splitlines()
        if proc.returncode != 0 or len(lines) != 1:
            raise HarnessError(
                f"ragq keys create failed ({proc.returncode}): "
                f"{err.decode(errors='replace')[-500:]}"
            )
        return lines[0].strip()
