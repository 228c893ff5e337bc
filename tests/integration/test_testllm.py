"""Tests for scripts/testllm.py, the OpenAI-compatible vLLM stand-in, via the openai client."""

import asyncio
import math
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from scripts.testllm import DEFAULT_MODEL, NO_ANSWER, answer_for, embed_text, serve_testllm

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
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


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    async with serve_testllm() as url:
        yield url


@pytest.fixture
async def llm(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        base_url=f"{base_url}/v1", api_key="x", max_retries=0, _strict_response_validation=True
    )
    yield client
    await client.close()


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


async def control(http: httpx.AsyncClient, **changes: Any) -> None:
    response = await http.post("/_control", json=changes)
    response.raise_for_status()


async def stats_when(http: httpx.AsyncClient, counter: str, **bounds: int) -> dict[str, Any]:
    """The server's counters once `counter` is within `min`/`max` (the server does the waiting)."""
    response = await http.get("/_stats", params={"wait": counter, **bounds, "timeout": 10})
    assert response.status_code == 200, f"{counter} never reached {bounds}: {response.text}"
    stats: dict[str, Any] = response.json()
    return stats


async def collect(
    stream: openai.AsyncStream[ChatCompletionChunk], into: list[ChatCompletionChunk]
) -> None:
    async with stream:
        async for chunk in stream:
            into.append(chunk)


def content_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_stream_deltas_equal_the_non_streamed_answer_and_end_with_usage(
    llm: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    """Guards the answer format, the chunk/usage shapes and that the openai client parses them."""
    completion = await llm.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER == answer_for(MESSAGES)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None

    chunks: list[ChatCompletionChunk] = []
    stream = await llm.chat.completions.create(
        model=DEFAULT_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    await collect(stream, chunks)

    assert chunks[0].choices[0].delta.role == "assistant"
    assert content_of(chunks) == ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == completion.usage
    assert completion.usage.completion_tokens == len(chunks) - 3  # role, finish, usage chunks
    assert completion.usage.prompt_tokens == 5 + 4 + len(PROMPT.split()) + 4
    stats = (await http.get("/_stats")).json()
    assert stats["streams_completed"] == 1
    assert stats["tokens_sent"] == 2 * completion.usage.completion_tokens
    assert stats["last_request"]["messages"] == MESSAGES

    no_sources = await llm.chat.completions.create(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "What is the leave policy?"}]
    )
    assert no_sources.choices[0].message.content == NO_ANSWER


@pytest.mark.parametrize("stream", [False, True])
async def test_max_tokens_truncates_with_finish_reason_length(
    llm: openai.AsyncOpenAI, stream: bool
) -> None:
    """Guards max_tokens: stop after that many tokens, finish_reason "length", usage counts them."""
    content: str | None
    if stream:
        chunks: list[ChatCompletionChunk] = []
        response = await llm.chat.completions.create(
            model=DEFAULT_MODEL,
            messages=MESSAGES,
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
        await collect(response, chunks)
        content, usage = content_of(chunks), chunks[-1].usage
        finish_reason = chunks[-2].choices[0].finish_reason
    else:
        completion = await llm.chat.completions.create(
            model=DEFAULT_MODEL, messages=MESSAGES, max_tokens=4
        )
        content, usage = completion.choices[0].message.content, completion.usage
        finish_reason = completion.choices[0].finish_reason
    assert content == "According to the sources, "
    assert finish_reason == "length"
    assert usage is not None
    assert usage.completion_tokens == 4


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, openai.RateLimitError), (500, openai.InternalServerError), (503, openai.APIStatusError)],
)
async def test_injected_failures_reach_the_client_as_matching_status_errors(
    llm: openai.AsyncOpenAI,
    http: httpx.AsyncClient,
    status: int,
    error: type[openai.APIStatusError],
) -> None:
    """Guards fail_status/fail_next (a count, or -1 = until changed) and 404 for unknown models."""
    await control(http, fail_status=status, fail_next=2)
    for stream in (False, True):
        with pytest.raises(error) as caught:
            await llm.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES, stream=stream)
        assert caught.value.status_code == status
        assert "Injected failure" in caught.value.message
    assert (await llm.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES)).choices

    await control(http, fail_next=-1)
    for _ in range(3):
        with pytest.raises(error):
            await llm.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES)
    await control(http, fail_status=None)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        await llm.chat.completions.create(model="no-such-model", messages=MESSAGES)
    stats = (await http.get("/_stats")).json()
    assert (stats["chat_requests"], stats["chat_failures_injected"]) == (7, 5)


async def test_closing_a_stream_early_is_counted_and_stops_the_tokens(
    llm: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    """Guards what cancel tests rely on: streams_disconnected counts it and tokens_sent stops."""
    await control(http, token_latency_ms=60_000)  # token 2 would come a minute after token 1
    stream = await llm.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES, stream=True)
    async with stream:
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                break

    stats = await stats_when(http, "streams_disconnected", min=1)
    assert stats["tokens_sent"] == 1
    assert (stats["streams_started"], stats["streams_completed"], stats["chat_in_flight"]) == (
        1,
        0,
        0,
    )


@pytest.mark.parametrize(
    ("changes", "stream", "tokens"),
    [
        ({"hang": True}, False, 0),
        ({"hang": True}, True, 0),
        ({"hang": True, "hang_after_tokens": 2}, True, 2),
    ],
)
async def test_hang_makes_the_client_time_out_and_ends_on_disconnect(
    llm: openai.AsyncOpenAI,
    http: httpx.AsyncClient,
    changes: dict[str, Any],
    stream: bool,
    tokens: int,
) -> None:
    """Guards hang / hang_after_tokens: the client times out, the server lets go when it leaves."""
    await control(http, **changes)
    chunks: list[ChatCompletionChunk] = []

    async def ask() -> None:
        response = await llm.chat.completions.create(
            model=DEFAULT_MODEL, messages=MESSAGES, stream=stream, timeout=0.5
        )
        if isinstance(response, openai.AsyncStream):
            await collect(response, chunks)

    with pytest.raises(openai.APITimeoutError):
        await ask()

    assert content_of(chunks) == "".join(ANSWER.split(" ")[i] + " " for i in range(tokens))
    stats = await stats_when(http, "chat_disconnected", min=1)
    assert (stats["chat_in_flight"], stats["tokens_sent"]) == (0, tokens)
    assert stats["streams_disconnected"] == int(stream)


async def test_drop_after_tokens_cuts_the_stream_without_done(
    llm: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    """Guards drop_after_tokens: N tokens, then a broken connection the client reports as such."""
    await control(http, drop_after_tokens=3)
    chunks: list[ChatCompletionChunk] = []
    stream = await llm.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIConnectionError):
        await collect(stream, chunks)

    assert content_of(chunks) == "According to the "
    assert all(c.choices[0].finish_reason is None for c in chunks)
    stats = await stats_when(http, "chat_in_flight", max=0)
    assert (stats["streams_dropped"], stats["tokens_sent"], stats["streams_completed"]) == (1, 3, 0)


async def test_embeddings_are_deterministic_normalised_and_word_based(
    base_url: str, http: httpx.AsyncClient
) -> None:
    """Guards /v1/embeddings in both encodings the openai client uses (base64 by default)."""
    texts = ["paid leave policy", "the leave policy for staff", "kubernetes cluster upgrade"]
    # Not strict: the client validates base64 strings against list[float] before decoding them.
    async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0) as llm:
        default = await llm.embeddings.create(model="any-embedder", input=texts)
        floats = await llm.embeddings.create(
            model="any-embedder", input=texts, encoding_format="float"
        )
        single = await llm.embeddings.create(model="any-embedder", input=texts[0])
        await control(http, embedding_dim=8)
        resized = await llm.embeddings.create(model="any-embedder", input="x")

    assert default.model == "any-embedder"
    assert default.usage.prompt_tokens == 11
    vectors = [d.embedding for d in floats.data]
    assert vectors == [embed_text(t, 64) for t in texts]
    assert single.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)
    for b64, plain in zip(default.data, floats.data, strict=True):
        assert len(b64.embedding) == 64
        assert b64.embedding == pytest.approx(plain.embedding, abs=1e-6)
    assert all(math.isclose(math.hypot(*v), 1.0) for v in vectors)

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert len(resized.data[0].embedding) == 8


async def test_cli_prints_ready_serves_and_exits_cleanly_on_sigterm() -> None:
    """Guards the command line: one READY line with a free port, /v1/models, the
    --stream-reply fault, exit 0 on SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "scripts/testllm.py",
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


async def test_stream_reply_json_answers_a_streaming_request_with_the_plain_completion(
    http: httpx.AsyncClient,
) -> None:
    """Guards stream_reply "json": a streaming request gets the non-streamed chat.completion."""
    plain = await http.post("/v1/chat/completions", json={**stream_request(), "stream": False})
    await control(http, stream_reply="json")
    reply = await http.post("/v1/chat/completions", json=stream_request())
    body = reply.json()
    assert reply.headers["content-type"] == "application/json"
    assert (body["object"], body["choices"][0]["message"]["content"]) == ("chat.completion", ANSWER)
    assert (body["choices"], body["usage"]) == (plain.json()["choices"], plain.json()["usage"])


@pytest.mark.parametrize(
    ("reply", "content_type", "events"),
    [
        ("garbage", "application/json", None),
        ("garbage_events", "text/event-stream; charset=utf-8", ['{"nonsense":true}'] * 2),
    ],
)
async def test_stream_reply_garbage_answers_200_with_nonsense(
    http: httpx.AsyncClient, reply: str, content_type: str, events: list[str] | None
) -> None:
    """Guards stream_reply "garbage" / "garbage_events": a 200 whose body or events are
    `{"nonsense": true}`, never a chunk; non-streaming requests still get the completion."""
    await control(http, stream_reply=reply)
    streamed = await http.post("/v1/chat/completions", json=stream_request())
    plain = await http.post("/v1/chat/completions", json={**stream_request(), "stream": False})
    assert (streamed.status_code, streamed.headers["content-type"]) == (200, content_type)
    if events is None:
        assert streamed.json() == {"nonsense": True}
    else:
        assert sse_data(streamed.text) == [*events, "[DONE]"]
    assert plain.json()["choices"][0]["message"]["content"] == ANSWER


async def test_stream_reply_no_finish_streams_the_answer_without_a_finish_reason(
    http: httpx.AsyncClient,
) -> None:
    """Guards stream_reply "no_finish": every text chunk and the usage, then [DONE], but no
    chunk carries a finish_reason."""
    await control(http, stream_reply="no_finish")
    reply = await http.post("/v1/chat/completions", json=stream_request())
    data = sse_data(reply.text)
    chunks = [ChatCompletionChunk.model_validate_json(d) for d in data[:-1]]
    assert content_of(chunks) == ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None] * (len(chunks) - 1)
    assert (chunks[-1].choices, chunks[-1].usage is not None, data[-1]) == ([], True, "[DONE]")


async def test_stream_reply_empty_is_a_valid_stream_without_text(
    http: httpx.AsyncClient,
) -> None:
    """Guards stream_reply "empty": a well-formed stream, finish_reason "stop", no text,
    0 completion tokens."""
    await control(http, stream_reply="empty")
    reply = await http.post("/v1/chat/completions", json=stream_request())
    data = sse_data(reply.text)
    chunks = [ChatCompletionChunk.model_validate_json(d) for d in data[:-1]]
    usage = chunks[-1].usage
    assert usage is not None
    assert (content_of(chunks), chunks[-2].choices[0].finish_reason) == ("", "stop")
    assert (usage.completion_tokens, data[-1]) == (0, "[DONE]")


async def test_stream_reply_rejects_unknown_shapes(http: httpx.AsyncClient) -> None:
    """Guards /_control: an unknown stream_reply is refused with 400 and changes nothing."""
    refused = await http.post("/_control", json={"stream_reply": "xml"})
    unchanged = (await http.post("/_control", json={})).json()
    assert (refused.status_code, unchanged["stream_reply"]) == (400, "sse")
