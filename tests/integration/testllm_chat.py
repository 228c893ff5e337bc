"""What the test-LLM tests share: a prompt with two sources and the answer the server gives
it, changing the server's behaviour, waiting on its counters, and reading chunks and
event-stream bodies."""

from __future__ import annotations

from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from scripts.testllm import DEFAULT_MODEL

WAIT_S = 60  # seconds the server waits for a counter's bound before answering 408
PROMPT = (
    "Answer from the sources and cite them.\n\n"
    "[1] (Staff handbook)\nEmployees get 25 days of paid leave. Unused days expire in March.\n"
    "[2] Title: Remote work\nRemote work is allowed on Fridays! Ask your manager first.\n\n"
    "Question: How much leave do I get?"
)
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": PROMPT},
]
ANSWER = (
    "According to the sources, Employees get 25 days of paid leave. [1] "
    "Remote work is allowed on Fridays! [2]"
)


async def control(client: httpx.AsyncClient, **changes: Any) -> None:
    """Change the server's behaviour (`POST /_control`)."""
    response = await client.post("/_control", json=changes)
    response.raise_for_status()


async def stats_when(client: httpx.AsyncClient, counter: str, **bounds: int) -> dict[str, Any]:
    """The server's counters once `counter` is within `min`/`max` (the server does the waiting)."""
    # the bound only turns a counter that never moves into a failure before pytest's timeout
    params: dict[str, str | int] = {"wait": counter, **bounds, "timeout": WAIT_S}
    response = await client.get("/_stats", params=params, timeout=WAIT_S + 30)
    assert response.status_code == 200, f"{counter} never reached {bounds}: {response.text}"
    stats: dict[str, Any] = response.json()
    return stats


async def collect(
    stream: openai.AsyncStream[ChatCompletionChunk], into: list[ChatCompletionChunk]
) -> None:
    """Read a stream to its end (or its failure), keeping each chunk."""
    async with stream:
        async for chunk in stream:
            into.append(chunk)


def content_of(chunks: list[ChatCompletionChunk]) -> str:
    """The text the chunks carry."""
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def sse_data(body: str) -> list[str]:
    """The `data` of each event of an event-stream body, in order."""
    return [e.removeprefix("data: ") for e in body.split("\n\n") if e.startswith("data: ")]


def stream_request(**extra: Any) -> dict[str, Any]:
    """A streaming chat request body (with usage) for the test messages."""
    return {
        "model": DEFAULT_MODEL,
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }
