"""The test LLM's answers through the openai client: the streamed deltas equal the plain
answer and end with usage, max_tokens truncates, answer_tokens fixes the length, and
embeddings are deterministic."""

from __future__ import annotations

import math
import time

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from scripts.testllm import DEFAULT_MODEL, NO_ANSWER, answer_for, embed_text, split_tokens
from tests.integration.testllm_chat import (
    ANSWER,
    MESSAGES,
    PROMPT,
    collect,
    content_of,
    control,
)

pytestmark = pytest.mark.integration


async def test_stream_deltas_equal_the_non_streamed_answer_and_end_with_usage(
    llm_api: openai.AsyncOpenAI, llm_http: httpx.AsyncClient
) -> None:
    """Guards the answer format, the chunk/usage shapes and that the openai client parses them."""
    completion = await llm_api.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER == answer_for(MESSAGES)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None

    chunks: list[ChatCompletionChunk] = []
    stream = await llm_api.chat.completions.create(
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
    stats = (await llm_http.get("/_stats")).json()
    assert stats["streams_completed"] == 1
    assert stats["tokens_sent"] == 2 * completion.usage.completion_tokens
    assert stats["last_request"]["messages"] == MESSAGES

    no_sources = await llm_api.chat.completions.create(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "What is the leave policy?"}]
    )
    assert no_sources.choices[0].message.content == NO_ANSWER


@pytest.mark.parametrize("stream", [False, True])
async def test_max_tokens_truncates_with_finish_reason_length(
    llm_api: openai.AsyncOpenAI, stream: bool
) -> None:
    """Guards max_tokens: stop after that many tokens, finish_reason "length", usage counts them."""
    content: str | None
    if stream:
        chunks: list[ChatCompletionChunk] = []
        response = await llm_api.chat.completions.create(
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
        completion = await llm_api.chat.completions.create(
            model=DEFAULT_MODEL, messages=MESSAGES, max_tokens=4
        )
        content, usage = completion.choices[0].message.content, completion.usage
        finish_reason = completion.choices[0].finish_reason
    assert content == "According to the sources, "
    assert finish_reason == "length"
    assert usage is not None
    assert usage.completion_tokens == 4


async def test_embeddings_are_deterministic_normalised_and_word_based(
    testllm: str, llm_http: httpx.AsyncClient
) -> None:
    """Guards /v1/embeddings in both encodings the openai client uses (base64 by default)."""
    texts = ["paid leave policy", "the leave policy for staff", "kubernetes cluster upgrade"]
    # Not strict: the client validates base64 strings against list[float] before decoding them.
    async with openai.AsyncOpenAI(base_url=f"{testllm}/v1", api_key="x", max_retries=0) as llm:
        default = await llm.embeddings.create(model="any-embedder", input=texts)
        floats = await llm.embeddings.create(
            model="any-embedder", input=texts, encoding_format="float"
        )
        single = await llm.embeddings.create(model="any-embedder", input=texts[0])
        await control(llm_http, embedding_dim=8)
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


@pytest.mark.parametrize("count", [5, 45])
async def test_answer_tokens_makes_every_answer_exactly_that_long(
    llm_api: openai.AsyncOpenAI, llm_http: httpx.AsyncClient, count: int
) -> None:
    """Guards answer_tokens: N streamed tokens (cut, or the answer cycled with its markers),
    usage counting them, the plain reply alike, max_tokens still cutting, the tokens paced
    on their schedule, None as before."""
    tokens = split_tokens(ANSWER)
    await control(llm_http, answer_tokens=count)
    chunks: list[ChatCompletionChunk] = []
    stream = await llm_api.chat.completions.create(
        model=DEFAULT_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    await collect(stream, chunks)
    completion = await llm_api.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES)
    short = await llm_api.chat.completions.create(
        model=DEFAULT_MODEL, messages=MESSAGES, max_tokens=3
    )

    text = content_of(chunks)
    assert len(chunks) - 3 == count  # role, finish and usage chunks besides the tokens
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == count
    assert completion.choices[0].message.content == text
    assert completion.usage is not None
    assert completion.usage.completion_tokens == count
    if count <= len(tokens):
        assert text == "".join(tokens[:count])
    else:
        assert text.startswith(ANSWER + " " + tokens[0])
        assert text.count("[1]") == text.count("[2]") == 2
        assert not text.endswith(" ")
    assert short.choices[0].message.content == "".join(tokens[:3])
    assert short.choices[0].finish_reason == "length"

    await control(llm_http, token_latency_ms=1)  # paced: token k at k ms after the first
    started = time.perf_counter()
    await collect(
        await llm_api.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES, stream=True),
        [],
    )
    assert time.perf_counter() - started >= (count - 1) * 0.001 - 0.001

    await control(llm_http, answer_tokens=None, token_latency_ms=0)
    plain = await llm_api.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES)
    assert plain.choices[0].message.content == ANSWER
    bad = await llm_http.post("/_control", json={"answer_tokens": 0})
    assert bad.status_code == 400
