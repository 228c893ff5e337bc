"""The test LLM as a process: `python -m scripts.testllm` prints one READY line, serves,
takes its faults from flags and exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.testllm_chat import stream_request

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_cli_prints_ready_serves_and_exits_cleanly_on_sigterm() -> None:
    """Guards the command line: one READY line with a free port, /v1/models, the
    --stream-reply fault, exit 0 on SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scripts.testllm",
        *("--host", "127.0.0.1", "--port", "0", "--model", "tiny", "--stream-reply", "garbage"),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert line.startswith("READY http://127.0.0.1:"), line
        async with httpx.AsyncClient(base_url=line.split()[1]) as client:
            models = (await client.get("/v1/models")).json()
            reply = await client.post(
                "/v1/chat/completions", json={**stream_request(), "model": "tiny"}
            )
        assert [m["id"] for m in models["data"]] == ["tiny"]
        assert reply.json() == {"nonsense": True}
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert (proc.returncode, out) == (0, b""), err.decode()
