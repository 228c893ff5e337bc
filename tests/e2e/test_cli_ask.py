"""`ragq ask` says when an answer is extractive: with no LLM configured the answer and its
citations are printed as usual, then one note on stderr naming the setting to set, on the
streamed and the `--no-stream` path alike."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_cli_errors import RAGQ
from tests.e2e.test_stack import DOC

pytestmark = pytest.mark.e2e
NOTE = (
    "note: extractive answer, built without the LLM (no LLM configured: set "
    "RAGQ_LLM_BASE_URL for the ragq worker to an OpenAI-compatible server)"
)


async def _ask(stack: Stack, key: str, *flags: str) -> tuple[int, str, list[str]]:
    process = await asyncio.create_subprocess_exec(
        RAGQ,
        "ask",
        "How do I rotate a signing key?",
        "--url",
        stack.url,
        "--key",
        key,
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return int(process.returncode or 0), out.decode(), err.decode().splitlines()


async def test_an_extractive_answer_is_noted_on_both_paths(stack: Stack) -> None:
    """Without RAGQ_LLM_BASE_URL, both `ragq ask` and `ragq ask --no-stream` exit 0, print
    the answer and citations on stdout, and end with the note (its only stderr line)."""
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    await stack.index(key, DOC)
    streamed = await _ask(stack, key)
    whole = await _ask(stack, key, "--no-stream")
    for code, out, err in (streamed, whole):
        assert code == 0
        assert "[1] Rotating signing keys (key-rotation, chars " in out
        assert err == [NOTE]
