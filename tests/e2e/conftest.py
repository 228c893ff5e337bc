"""End-to-end fixtures: real `ragq serve` / `ragq worker` processes and the test LLM server
as a process, on the test Redis DB, talked to over HTTP like any client."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """Processes of one test's stack; `stop()` ends whatever is still running."""

    tmp: Path
    env: dict[str, str]
    url: str = ""
    llm_url: str = ""
    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    async def spawn(self, name: str, *args: str) -> asyncio.subprocess.Process:
        """Start `python -m shared.cli ARGS`, logging to tmp/NAME.log."""
        log = (self.tmp / f"{name}.log").open("ab")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shared.cli",
            *args,
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        log.close()
        self.procs[name] = proc
        return proc

    async def start_llm(self, *flags: str) -> None:
        """Start the test LLM server; wait for its READY line."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "scripts" / "testllm.py"),
            "--port",
            "0",
            *flags,
            stdout=asyncio.subprocess.PIPE,
        )
        self.procs["llm"] = proc
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        self.llm_url = line.decode().split()[1]
        self.env["RAGQ_LLM_BASE_URL"] = f"{self.llm_url}/v1"

    async def start_worker(self, name: str = "worker") -> asyncio.subprocess.Process:
        """Start a worker process (both queues)."""
        return await self.spawn(name, "worker")

    async def start_api(self) -> None:
        """Start the API and wait until /readyz says ready (so a worker must be up)."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        await self.spawn("api", "serve", "--port", str(port))
        await self.wait_ready()

    async def wait_ready(self) -> None:
        """Poll /readyz until 200 (processes give no other signal across the boundary)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    try:
                        if (await client.get("/readyz")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)

    async def key(self, tenant: str) -> str:
        """Issue an API key with `ragq keys create`."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shared.cli",
            "keys",
            "create",
            "--tenant",
            tenant,
            env=self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return out.decode().strip()

    async def llm_control(self, **behaviour: Any) -> None:
        """Change the test LLM's behaviour."""
        async with httpx.AsyncClient() as client:
            (await client.post(f"{self.llm_url}/_control", json=behaviour)).raise_for_status()

    async def llm_stats(self, **wait: Any) -> dict[str, Any]:
        """The test LLM's counters; `wait=COUNTER, min=N` first waits for that bound."""
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.get(f"{self.llm_url}/_stats", params=wait)
            assert response.status_code == 200, response.text
            return dict(response.json())

    async def stop(self) -> None:
        """SIGTERM everything still running, then SIGKILL what does not exit."""
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    def logs(self) -> str:
        """Every process log, for failure messages."""
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in self.tmp.glob("*.log"))


@pytest.fixture
async def stack(tmp_path: Path, redis: Any) -> AsyncIterator[Stack]:
    """A stack on the test Redis DB; the test starts the parts it needs."""
    env = {
        **os.environ,
        "RAGQ_REDIS_URL": TEST_REDIS_URL,
        "RAGQ_KEY_PREFIX": "ragqtest",
        "RAGQ_QDRANT_PATH": str(tmp_path / "qdrant"),
        "RAGQ_LOG_LEVEL": "info",
        "RAGQ_HEARTBEAT_S": "0.5",
        "RAGQ_LOCK_TTL_S": "3",
        "RAGQ_WORKER_DRAIN_S": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RAGQ_LLM_BASE_URL", None)
    s = Stack(tmp=tmp_path, env=env)
    try:
        yield s
    finally:
        await s.stop()


def auth(key: str) -> dict[str, str]:
    """Headers of an authenticated request."""
    return {"Authorization": f"Bearer {key}"}
