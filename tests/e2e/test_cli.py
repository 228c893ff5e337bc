"""`ragq ask` against a running stack: the answer streamed to stdout, then its citations,
the same with `--no-stream`; a refused request exits 1 with the problem on stderr.
`ragq ingest` loads what it can and says what it skipped."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Stack, auth
from tests.e2e.test_stack import DOC

pytestmark = pytest.mark.e2e


async def _ask(stack: Stack, key: str, *flags: str) -> tuple[int, str, str]:
    return await _ragq(
        "ask", "How do I rotate a signing key?", "--url", stack.url, "--key", key, *flags
    )


async def _ragq(*argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scripts.cli",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return int(process.returncode or 0), out.decode(), err.decode()


async def test_ragq_ask_prints_the_answer_then_its_citations(stack: Stack) -> None:
    await stack.start_llm()
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    await stack.index(key, DOC)
    streamed = await _ask(stack, key)
    whole = await _ask(stack, key, "--no-stream")
    refused = await _ask(stack, "rq_not_a_key")
    async with httpx.AsyncClient(base_url=stack.url, headers=auth(key)) as client:
        body = {"question": "How do I rotate a signing key?"}
        answer = (await client.post("/v1/rag", json=body, timeout=60)).json()["answer"]
    citation = "[1] Rotating signing keys (key-rotation, chars "
    for code, out, err in (streamed, whole):
        assert code == 0
        assert out.startswith(answer), out
        assert citation in out
        assert "note: extractive answer" not in err  # the LLM answered
    assert refused[0] == 1
    assert "401" in refused[2] or "unauthorized" in refused[2].lower()


async def test_ragq_ingest_loads_what_it_can_and_says_what_it_skipped(
    stack: Stack, tmp_path: Path
) -> None:
    """A missing path and a Latin-1 file are skipped with a line each (the run goes on);
    the readable file is loaded; the exit code is 1, since not everything was loaded."""
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    docs = tmp_path / "docs"  # tmp_path also holds the stack's logs and Qdrant folder
    docs.mkdir()
    (docs / "guide.md").write_text("# Guide\n\nUse atlas rollout.\n")
    (docs / "latin1.txt").write_bytes("café".encode("latin-1"))
    missing = tmp_path / "missing.md"
    code, _, err = await _ragq("ingest", str(docs), str(missing), "--url", stack.url, "--key", key)
    lines = err.splitlines()
    assert code == 1
    assert lines[:2] == [
        f"skipped: {docs / 'latin1.txt'}: not UTF-8 text",
        f"skipped: {missing}: No such file or directory",
    ]
    assert lines[2].startswith("ragq ingest: 3 files: 1 queued, 0 unchanged, 0 failed, 2 skipped;")
    assert lines[2].endswith("(pass --wait to wait for indexing)")
    assert len(lines) == 3
