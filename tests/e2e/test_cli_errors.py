"""The CLI speaks to people: an API or a Redis that does not answer is one line on stderr
saying what to do, with exit code 3 (a service ragq needs did not answer), never a
traceback."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from scripts.harness import free_port

pytestmark = pytest.mark.e2e


async def _ragq(*argv: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scripts.cli",
        *argv,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    return int(process.returncode or 0), err.decode().splitlines()


async def test_ask_of_an_api_that_is_not_there_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, lines = await _ragq("ask", "hello?", "--url", url, "--key", "rq_x")
    assert code == 3
    assert len(lines) == 1
    assert lines[0].startswith(f"ragq: cannot reach the ragq API at {url} (ConnectError")
    assert "--url" in lines[0]


async def test_keys_without_redis_is_one_line() -> None:
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    code, lines = await _ragq(
        "keys", "create", "--tenant", "acme", env={"RAGQ_REDIS_URL": redis_url}
    )
    assert code == 3
    assert len(lines) == 1
    assert lines[0].startswith(f"ragq: Redis does not answer at {redis_url}")
    assert "RAGQ_REDIS_URL" in lines[0]
