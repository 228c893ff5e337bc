"""The CLI speaks to people: an API or a Redis that does not answer is one line on stderr
saying what to do, with exit code 3 (a service ragq needs did not answer), never a
traceback — `ragq worker` included, which says so at once instead of retrying forever."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from scripts.harness import free_port

pytestmark = pytest.mark.e2e


RAGQ = Path(sys.executable).parent / "ragq"  # the console script, as a user runs it


async def run_ragq(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, list[str]]:
    """Run `ragq ARGV` to its end; its exit code and its stderr lines."""
    process = await asyncio.create_subprocess_exec(
        RAGQ,
        *argv,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    return int(process.returncode or 0), err.decode().splitlines()


async def test_ask_of_an_api_that_is_not_there_is_one_line() -> None:
    """`ragq ask` at an address nobody answers names it and --url, exit 3."""
    url = f"http://127.0.0.1:{free_port()}"
    code, lines = await run_ragq("ask", "hello?", "--url", url, "--key", "rq_x")
    assert code == 3
    assert len(lines) == 1
    assert lines[0].startswith(f"ragq: cannot reach the ragq API at {url} (ConnectError")
    assert "--url" in lines[0]


async def test_keys_without_redis_is_one_line() -> None:
    """`ragq keys create` with no Redis names the URL and RAGQ_REDIS_URL, exit 3."""
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    code, lines = await run_ragq(
        "keys", "create", "--tenant", "acme", env={"RAGQ_REDIS_URL": redis_url}
    )
    assert code == 3
    assert len(lines) == 1
    assert lines[0].startswith(f"ragq: Redis does not answer at {redis_url}")
    assert "RAGQ_REDIS_URL" in lines[0]


async def test_worker_without_redis_is_one_line_and_exit_3(tmp_path: Path) -> None:
    """`ragq worker` with no Redis at RAGQ_REDIS_URL names the URL and the setting, exit 3."""
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    env = {
        "RAGQ_REDIS_URL": redis_url,
        "RAGQ_QDRANT_PATH": str(tmp_path / "qdrant"),
        "RAGQ_WORKER_METRICS_PORT": "0",
    }
    code, lines = await run_ragq("worker", env=env)
    assert code == 3
    assert len(lines) == 1
    assert lines[0].startswith(f"ragq: Redis does not answer at {redis_url} (")
    assert lines[0].endswith("; start redis-server or set RAGQ_REDIS_URL.")
