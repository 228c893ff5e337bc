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

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import httpx2
import openai
from openai import AsyncStream
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import Choice, ChoiceDelta
from pydantic import ValidationError

from shared.schemas.jobs import Usage


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
    while True:
        try:
            chunk = await anext(stream)
        except StopAsyncIteration:
            break
        except ValueError as exc:  # an event whose data is not JSON (or not UTF-8)
            raise _invalid(response, f"an event is not JSON: {exc}") from exc
        text = _chunk_text(response, chunk, completion)
        if text:
            yield text
    if completion.finish_reason is None:  # cut short, however cleanly the connection ended
        raise _invalid(response, "the stream ended without a finish_reason")


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


def _chunk_text(
    response: httpx2.Response, chunk: ChatCompletionChunk, completion: Completion
) -> str:
    """A chunk's text, after checking the fields read from it (the SDK did not) and
    noting its usage and finish_reason."""
    choices: object = chunk.choices
    if chunk.object != "chat.completion.chunk" or not isinstance(choices, list):
        raise _invalid(response, f"an event is not a chat.completion.chunk: {chunk!r:.200}")
    text = ""
    for choice in choices:
        delta = choice.delta if isinstance(choice, Choice) else None
        if (
            not isinstance(delta, ChoiceDelta)
            or not isinstance(delta.content, str | None)
            or not isinstance(choice.finish_reason, str | None)
        ):
            raise _invalid(response, f"a chunk's choice is malformed: {choice!r:.200}")
        text += delta.content or ""
        completion.finish_reason = choice.finish_reason or completion.finish_reason
    completion.usage = _usage_of(response, chunk.usage) or completion.usage
    return text


def _usage_of(response: httpx2.Response, usage: CompletionUsage | None) -> Usage | None:
    """The reply's usage, if it has one (checked: the SDK builds it unvalidated)."""
    if usage is None:
        return None
    counts = (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        raise _invalid(response, f"the usage is malformed: {usage!r:.200}")
    return Usage(prompt_tokens=counts[0], completion_tokens=counts[1], total_tokens=counts[2])


def _invalid(response: httpx2.Response, message: str) -> openai.APIResponseValidationError:
    return openai.APIResponseValidationError(response, None, message=f"LLM reply: {message}")
