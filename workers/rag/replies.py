"""Reading the reply to a streamed chat-completion request, and what counts as a valid one.

A reply is read in one place, `read_reply`, whatever shape it comes in: an event stream of
`chat.completion.chunk`s, valid once a chunk carries a `finish_reason`; or a plain
`chat.completion` body (servers that ignore `stream`), whose content is taken as the
answer and whose usage as the usage. Anything else (another body, events that are not
chunks, a stream that ends without a `finish_reason`: it may have been cut) is the
endpoint's failure, like a 5xx: before the first text it is counted by the breaker and
retried; after it, raised (the breaker counted the call as it reached its first text).
A valid reply without any text (a `finish_reason`, no content) is no answer: the endpoint
is healthy (its breaker counts a success, nothing is retried, as the same request would
get the same reply) but the call raises `UpstreamUnavailable`, so the job degrades to
its extractive answer instead of completing, and caching, an empty one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from openai import AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import ValidationError

from shared.schemas.jobs import Usage

DRAIN_S = 0.1  # after `[DONE]`, the rest of the body is read for this long at most
# the SDK's SSE reader (private, so looked up): decoded events, errors already mapped
EVENT_READER = callable(getattr(AsyncStream, "_iter_events", None))


@dataclass(slots=True)
class Completion:
    """What one streamed call produced so far."""

    model: str
    usage: Usage = field(default_factory=Usage)
    first_token_s: float | None = None
    finish_reason: str | None = None  # None until the reply says why it ended


async def read_reply(
    stream: AsyncStream[ChatCompletionChunk], completion: Completion
) -> AsyncGenerator[str, None]:
    """The reply's non-empty texts in order, its usage and finish_reason noted on the way.

    The one place that knows the shapes of a 200 reply to a streamed request (see the
    module docstring). The SDK wraps any 200 body in an `AsyncStream`, whatever its
    content type, and decodes it as events: a JSON body has none and reads as an empty
    stream, and events are built into chunks without validation. So the content type is
    checked here, and every chunk; a reply that is not valid raises
    `APIResponseValidationError`, which counts as the endpoint's failure."""
    response = stream.response
    completion.finish_reason = None  # this attempt's, not a failed one's
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "text/event-stream":
        reply = _completion_of(response, await response.aread())
        choice = reply.choices[0]
        message, completion.finish_reason = choice.message, choice.finish_reason
        completion.usage = _usage_of(response, reply.usage) or completion.usage
        if message.content:
            yield message.content
        return
    if EVENT_READER:
        async for text in _event_texts(response, stream._iter_events(), completion):
            yield text
    else:  # an SDK without it: its own chunk objects, built for every token
        async for text in _sdk_texts(stream, completion):
            yield text
    if completion.finish_reason is None:  # cut short, however cleanly the connection ended
        raise _invalid(response, "the stream ended without a finish_reason")


async def _event_texts(
    response: httpx2.Response, events: AsyncIterator[Any], completion: Completion
) -> AsyncGenerator[str, None]:
    """The texts of the SDK's decoded events (its SSE decoder, with its mapping of timeouts
    and dropped connections), each event's JSON read as plain data: no chunk object per
    token, which costs the worker a quarter of its CPU at 32 streams. `[DONE]` and an
    `error` event are handled as the SDK's own iterator handles them."""
    try:
        async for sse in events:
            if sse.data.startswith("[DONE]"):
                await _drain(response)  # the rest of the body: the connection is reused
                break
            try:
                data = json.loads(sse.data)
            except ValueError as exc:  # an event whose data is not JSON (or not UTF-8)
                raise _invalid(response, f"an event is not JSON: {exc}") from exc
            if isinstance(data, dict) and data.get("error"):
                error = data["error"]
                message = error.get("message") if isinstance(error, dict) else None
                raise openai.APIError(
                    message if isinstance(message, str) and message else "streaming error",
                    response.request,
                    body=error,
                )
            text = _data_text(response, data, completion)
            if text:
                yield text
    finally:
        await response.aclose()


async def _drain(response: httpx2.Response) -> None:
    """Read what follows `[DONE]` for at most `DRAIN_S` (as the SDK does), never failing."""
    with contextlib.suppress(TimeoutError, httpx2.HTTPError, httpx2.StreamError):
        async with asyncio.timeout(DRAIN_S):
            await response.aread()


async def _sdk_texts(
    stream: AsyncStream[ChatCompletionChunk], completion: Completion
) -> AsyncGenerator[str, None]:
    """The texts of the SDK's own chunk objects (the fallback of `read_reply`)."""
    while True:
        try:
            chunk = await anext(stream)
        except StopAsyncIteration:
            break
        except ValueError as exc:  # an event whose data is not JSON (or not UTF-8)
            raise _invalid(stream.response, f"an event is not JSON: {exc}") from exc
        text = _data_text(stream.response, chunk.model_dump(), completion)
        if text:
            yield text


def _data_text(response: httpx2.Response, data: object, completion: Completion) -> str:
    """A `chat.completion.chunk`'s text, after checking every field read from it, and
    noting its usage and finish_reason."""
    if (
        not isinstance(data, dict)
        or data.get("object") != "chat.completion.chunk"
        or not isinstance(choices := data.get("choices"), list)
    ):
        raise _invalid(response, f"an event is not a chat.completion.chunk: {data!r:.200}")
    text = ""
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        content = delta.get("content") if isinstance(delta, dict) else None
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        if (
            not isinstance(delta, dict)
            or not isinstance(content, str | None)
            or not isinstance(finish, str | None)
        ):
            raise _invalid(response, f"a chunk's choice is malformed: {choice!r:.200}")
        text += content or ""
        completion.finish_reason = finish or completion.finish_reason
    completion.usage = _usage_of(response, data.get("usage")) or completion.usage
    return text


def _completion_of(response: httpx2.Response, body: bytes) -> ChatCompletion:
    """A non-streamed reply, which must be a `chat.completion` with text content."""
    try:
        reply = ChatCompletion.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise _invalid(
            response,
            f"a {response.headers.get('content-type')!r} reply is not a chat.completion"
            f" ({where}: {first['msg']})",
        ) from exc
    if not reply.choices or reply.choices[0].message.content is None:
        raise _invalid(response, "the completion has no message content")
    return reply


def _usage_of(response: httpx2.Response, usage: object) -> Usage | None:
    """The reply's usage (a `CompletionUsage` the SDK built unvalidated, or an event's
    JSON object), if it has one, checked."""
    if usage is None:
        return None
    names = ("prompt_tokens", "completion_tokens", "total_tokens")
    if isinstance(usage, dict):
        counts = tuple(usage.get(name) for name in names)
    else:
        counts = tuple(getattr(usage, name, None) for name in names)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        raise _invalid(response, f"the usage is malformed: {usage!r:.200}")
    return Usage(prompt_tokens=counts[0], completion_tokens=counts[1], total_tokens=counts[2])


def _invalid(response: httpx2.Response, message: str) -> openai.APIResponseValidationError:
    return openai.APIResponseValidationError(response, None, message=f"LLM reply: {message}")
