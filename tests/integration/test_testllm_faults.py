"""The test LLM's injected faults through the openai client and raw HTTP: failure statuses,
hangs, dropped and abandoned streams, and misshapen stream replies."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from scripts.testllm import DEFAULT_MODEL
from tests.integration.testllm_chat import (
    ANSWER,
    MESSAGES,
    collect,
    content_of,
    control,
    sse_data,
    stats_when,
    stream_request,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, openai.RateLimitError), (500, openai.InternalServerError), (503, openai.APIStatusError)],
)
async def test_injected_failures_reach_the_client_as_matching_status_errors(
    llm_api: openai.AsyncOpenAI,
    llm_http: httpx.AsyncClient,
    status: int,
    error: type[openai.APIStatusError],
) -> None:
    """Guards fail_status/fail_next (a count, or -1 = until changed) and 404 for unknown models."""
    await control(llm_http, fail_status=status, fail_next=2)
    for stream in (False, True):
        with pytest.raises(error) as caught:
            await llm_api.chat.completions.create(
                model=DEFAULT_MODEL, messages=MESSAGES, stream=stream
            )
        assert caught.value.status_code == status
        assert "Injected failure" in caught.value.message
    assert (await llm_api.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES)).choices

    await control(llm_http, fail_next=-1)
    for _ in range(3):
        with pytest.raises(error):
            await llm_api.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES)
    await control(llm_http, fail_status=None)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        await llm_api.chat.completions.create(model="no-such-model", messages=MESSAGES)
    stats = (await llm_http.get("/_stats")).json()
    assert (stats["chat_requests"], stats["chat_failures_injected"]) == (7, 5)


async def test_closing_a_stream_early_is_counted_and_stops_the_tokens(
    llm_api: openai.AsyncOpenAI, llm_http: httpx.AsyncClient
) -> None:
    """Guards what cancel tests rely on: streams_disconnected counts it and tokens_sent stops."""
    # token 2 would come ten minutes after token 1, past pytest's timeout: never in this test
    await control(llm_http, token_latency_ms=600_000)
    stream = await llm_api.chat.completions.create(
        model=DEFAULT_MODEL, messages=MESSAGES, stream=True
    )
    async with stream:
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                break

    stats = await stats_when(llm_http, "streams_disconnected", min=1)
    assert stats["tokens_sent"] == 1
    assert (stats["streams_started"], stats["streams_completed"], stats["chat_in_flight"]) == (
        1,
        0,
        0,
    )


# the client's timeout, in seconds: a hang sends nothing, so any timeout fires and a short one
# keeps the test quick; where tokens come before the stall, the timeout (per read) is wide, so
# that the tokens, sent at once, arrive before it fires even on a busy machine
@pytest.mark.parametrize(
    ("changes", "stream", "tokens", "timeout_s"),
    [
        ({"hang": True}, False, 0, 0.5),
        ({"hang": True}, True, 0, 0.5),
        ({"hang": True, "hang_after_tokens": 2}, True, 2, 5.0),
    ],
)
async def test_hang_makes_the_client_time_out_and_ends_on_disconnect(
    llm_api: openai.AsyncOpenAI,
    llm_http: httpx.AsyncClient,
    changes: dict[str, Any],
    stream: bool,
    tokens: int,
    timeout_s: float,
) -> None:
    """Guards hang / hang_after_tokens: the client times out, the server lets go when it leaves."""
    await control(llm_http, **changes)
    chunks: list[ChatCompletionChunk] = []

    async def ask() -> None:
        response = await llm_api.chat.completions.create(
            model=DEFAULT_MODEL, messages=MESSAGES, stream=stream, timeout=timeout_s
        )
        if isinstance(response, openai.AsyncStream):
            await collect(response, chunks)

    with pytest.raises(openai.APITimeoutError):
        await ask()

    assert content_of(chunks) == "".join(ANSWER.split(" ")[i] + " " for i in range(tokens))
    stats = await stats_when(llm_http, "chat_disconnected", min=1)
    assert (stats["chat_in_flight"], stats["tokens_sent"]) == (0, tokens)
    assert stats["streams_disconnected"] == int(stream)


async def test_drop_after_tokens_cuts_the_stream_without_done(
    llm_api: openai.AsyncOpenAI, llm_http: httpx.AsyncClient
) -> None:
    """Guards drop_after_tokens: N tokens, then a broken connection the client reports as such."""
    await control(llm_http, drop_after_tokens=3)
    chunks: list[ChatCompletionChunk] = []
    stream = await llm_api.chat.completions.create(
        model=DEFAULT_MODEL, messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        await collect(stream, chunks)

    assert content_of(chunks) == "According to the "
    assert all(c.choices[0].finish_reason is None for c in chunks)
    stats = await stats_when(llm_http, "chat_in_flight", max=0)
    assert (stats["streams_dropped"], stats["tokens_sent"], stats["streams_completed"]) == (1, 3, 0)


async def test_stream_reply_json_answers_a_streaming_request_with_the_plain_completion(
    llm_http: httpx.AsyncClient,
) -> None:
    """Guards stream_reply "json": a streaming request gets the non-streamed chat.completion."""
    plain = await llm_http.post("/v1/chat/completions", json={**stream_request(), "stream": False})
    await control(llm_http, stream_reply="json")
    reply = await llm_http.post("/v1/chat/completions", json=stream_request())
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
    llm_http: httpx.AsyncClient, reply: str, content_type: str, events: list[str] | None
) -> None:
    """Guards stream_reply "garbage" / "garbage_events": a 200 whose body or events are
    `{"nonsense": true}`, never a chunk; non-streaming requests still get the completion."""
    await control(llm_http, stream_reply=reply)
    streamed = await llm_http.post("/v1/chat/completions", json=stream_request())
    plain = await llm_http.post("/v1/chat/completions", json={**stream_request(), "stream": False})
    assert (streamed.status_code, streamed.headers["content-type"]) == (200, content_type)
    if events is None:
        assert streamed.json() == {"nonsense": True}
    else:
        assert sse_data(streamed.text) == [*events, "[DONE]"]
    assert plain.json()["choices"][0]["message"]["content"] == ANSWER


async def test_stream_reply_no_finish_streams_the_answer_without_a_finish_reason(
    llm_http: httpx.AsyncClient,
) -> None:
    """Guards stream_reply "no_finish": every text chunk and the usage, then [DONE], but no
    chunk carries a finish_reason."""
    await control(llm_http, stream_reply="no_finish")
    reply = await llm_http.post("/v1/chat/completions", json=stream_request())
    data = sse_data(reply.text)
    chunks = [ChatCompletionChunk.model_validate_json(d) for d in data[:-1]]
    assert content_of(chunks) == ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None] * (len(chunks) - 1)
    assert (chunks[-1].choices, chunks[-1].usage is not None, data[-1]) == ([], True, "[DONE]")


async def test_stream_reply_empty_is_a_valid_stream_without_text(
    llm_http: httpx.AsyncClient,
) -> None:
    """Guards stream_reply "empty": a well-formed stream, finish_reason "stop", no text,
    0 completion tokens."""
    await control(llm_http, stream_reply="empty")
    reply = await llm_http.post("/v1/chat/completions", json=stream_request())
    data = sse_data(reply.text)
    chunks = [ChatCompletionChunk.model_validate_json(d) for d in data[:-1]]
    usage = chunks[-1].usage
    assert usage is not None
    assert (content_of(chunks), chunks[-2].choices[0].finish_reason) == ("", "stop")
    assert (usage.completion_tokens, data[-1]) == (0, "[DONE]")


async def test_stream_reply_rejects_unknown_shapes(llm_http: httpx.AsyncClient) -> None:
    """Guards /_control: an unknown stream_reply is refused with 400 and changes nothing."""
    refused = await llm_http.post("/_control", json={"stream_reply": "xml"})
    unchanged = (await llm_http.post("/_control", json={})).json()
    assert (refused.status_code, unchanged["stream_reply"]) == (400, "sse")


@pytest.mark.parametrize(
    ("drop_with", "stream", "error"),
    [
        ("close", True, httpx.RemoteProtocolError),  # "disconnected without sending a response"
        ("close", False, httpx.RemoteProtocolError),
        ("reset", True, httpx.ReadError),  # ECONNRESET
        ("reset", False, httpx.ReadError),
    ],
)
async def test_drop_before_headers_cuts_the_connection_without_any_response(
    llm_http: httpx.AsyncClient, drop_with: str, stream: bool, error: type[httpx.HTTPError]
) -> None:
    """Guards drop_before_headers / drop_with: the request is read, then the connection is
    closed (FIN) or reset (RST) with no status line, not even a 500; the next request on a
    new connection is answered."""
    await control(llm_http, drop_before_headers=True, drop_with=drop_with)
    with pytest.raises(error):
        await llm_http.post("/v1/chat/completions", json={**stream_request(), "stream": stream})
    stats = await stats_when(llm_http, "chat_dropped", min=1)
    await control(llm_http, drop_before_headers=False)
    after = await llm_http.post("/v1/chat/completions", json={**stream_request(), "stream": False})
    assert (stats["chat_dropped"], stats["streams_dropped"], stats["chat_in_flight"]) == (
        1,
        int(stream),
        0,
    )
    assert (stats["tokens_sent"], stats["streams_completed"]) == (0, 0)
    assert after.json()["choices"][0]["message"]["content"] == ANSWER


async def test_drop_with_reset_cuts_a_stream_mid_answer_with_an_rst(
    llm_api: openai.AsyncOpenAI, llm_http: httpx.AsyncClient
) -> None:
    """Guards drop_after_tokens with drop_with "reset": the client sees at most the tokens
    sent before the cut (an RST may discard some), no finish_reason, and a connection error."""
    await control(llm_http, drop_after_tokens=3, drop_with="reset")
    chunks: list[ChatCompletionChunk] = []
    stream = await llm_api.chat.completions.create(
        model=DEFAULT_MODEL, messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        await collect(stream, chunks)

    stats = await stats_when(llm_http, "chat_in_flight", max=0)
    assert "According to the ".startswith(content_of(chunks))
    assert all(c.choices[0].finish_reason is None for c in chunks)
    assert (stats["streams_dropped"], stats["chat_dropped"], stats["tokens_sent"]) == (1, 1, 3)


async def test_drop_with_rejects_unknown_ways(llm_http: httpx.AsyncClient) -> None:
    """Guards /_control: an unknown drop_with, or a drop_before_headers that is no boolean,
    is refused with 400 and changes nothing."""
    refused = [
        (await llm_http.post("/_control", json=change)).status_code
        for change in ({"drop_with": "fin"}, {"drop_before_headers": 1})
    ]
    unchanged = (await llm_http.post("/_control", json={})).json()
    assert refused == [400, 400]
    assert (unchanged["drop_with"], unchanged["drop_before_headers"]) == ("close", False)
