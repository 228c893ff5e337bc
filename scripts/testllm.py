"""A fake OpenAI-compatible LLM server that stands in for vLLM in tests and benchmarks.

This module holds only that server: its Starlette app, its deterministic answers and
embeddings, its run-time fault injection and counters, the in-process `serve_testllm`
helper and the command line. It must not import ragq code, so it tests ragq from outside.

Answers imitate a model that quotes its sources: the last user message is scanned for
sources, i.e. lines starting `[n] `; a source runs until the next `[n] ` line or the
`Question: ...` line. From each source a leading `(...)` title and a `Title: ...` line
are dropped, and so are code-fence lines and Markdown heading/list/quote marks; its
sentences end at `.`, `!` or `?` followed by white space. The sentence sharing most
words with the question (the first on a tie) is quoted. The answer is
`According to the sources, <sentence> [n] <sentence> [m] ...` over the first three
sources in prompt order;
without sources it is `I could not find this in the provided sources.`. Tokens are
`re.findall(r"\\S+\\s*", answer)`, so they concatenate back to the answer exactly.

Embeddings: hashed bag of lowercase words (`\\w+`), signed, L2-normalised; a text
without words gets the unit vector on dimension 0.

Fault injection (`Behaviour`, set at start-up or via `POST /_control`) is read once
per request when it arrives: changing it later does not affect requests in flight.
`hang_after_tokens` and `drop_after_tokens` apply to streaming requests only (if the
answer is shorter, all tokens are sent before stalling/dropping); `hang` stalls before
any byte. Every wait ends as soon as the client disconnects or the server shuts down.
`stream_reply` shapes the 200 reply to a streaming request, as engines that misbehave do:
"sse" (the default: a well-formed event stream), "json" (the non-streamed
`chat.completion` body, as a server that ignores `stream` sends), "garbage" (the JSON body
`{"nonsense": true}`), "garbage_events" (an event stream of `{"nonsense": true}` events,
then `[DONE]`), "no_finish" (the answer's chunks and usage, then `[DONE]`, but no chunk
with a `finish_reason`: a truncated stream) and "empty" (a well-formed stream with a
`finish_reason` but no text). Non-streaming requests always get the JSON body.

Endpoints: GET /v1/models, /health, /_stats (with `?wait=COUNTER&min=N&max=M&timeout=S`
it first waits for the bounds, answering 408 if they are not met in time); POST
/v1/chat/completions, /v1/embeddings, /_control (a subset of `Behaviour`), /_reset (back
to the start-up behaviour, counters zeroed).

Run: `python scripts/testllm.py --host 127.0.0.1 --port 0`; it prints one line
`READY http://HOST:PORT` on stdout once it listens, and exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import re
import signal
import socket
import struct
import sys
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, get_args

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = [
    "DEFAULT_MODEL",
    "NO_ANSWER",
    "STREAM_REPLIES",
    "Behaviour",
    "StreamReply",
    "answer_for",
    "create_app",
    "embed_text",
    "main",
    "serve_testllm",
    "split_tokens",
]

DEFAULT_MODEL = "qwen2.5-7b-instruct"
NO_ANSWER = "I could not find this in the provided sources."
ANSWER_PREFIX = "According to the sources, "
OWNER = "ragq-test"

_SOURCE_START = re.compile(r"^\s*\[(\d+)\](?:\s+(.*))?$")
_QUESTION_LINE = re.compile(r"^\s*Question:")
_PAREN_TITLE = re.compile(r"^\([^()]*\)\s*(.*)$")
_TITLE_LINE = re.compile(r"^Title:", re.IGNORECASE)
_SENTENCES = re.compile(r".+?[.!?](?=\s|$)|.+$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_MARKUP = re.compile(r"^\s*(#{1,6}\s+|[-*+]\s+|\d+\.\s+|>\s*)")
ANSWER_SOURCES = 5
SENTENCES_PER_SOURCE = 2
_HEADING = re.compile(r"^\s*#{1,6}\s")
# a few function words, kept here: this server must not import ragq code
_STOPWORD_TEXT = (
    "a an and are as at be by can do does for from how i in is it of on or that the this "
    "to what when where which who why will with you your my our we"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN = re.compile(r"\S+\s*")
_WORD = re.compile(r"\w+")

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_MAX_WAIT_S = 300.0
StreamReply = Literal["sse", "json", "garbage", "garbage_events", "no_finish", "empty"]
STREAM_REPLIES: tuple[StreamReply, ...] = get_args(StreamReply)
_NONSENSE = {"nonsense": True}


# --------------------------------------------------------------------------- behaviour


@dataclass
class Behaviour:
    """How the server behaves; every field can be changed at run time via `POST /_control`.

    `fail_status` with `fail_next` = N fails the next N chat requests (-1: all of them
    until changed; 0: none). `hang` stalls chat requests before sending anything.
    `hang_after_tokens` / `drop_after_tokens` stall / cut streams after that many tokens.
    `stream_reply` is the shape of a streaming request's reply (see the module docstring).
    """

    token_latency_ms: float = 0.0
    first_token_latency_ms: float = 0.0
    fail_status: int | None = None
    fail_next: int = 0
    hang: bool = False
    hang_after_tokens: int | None = None
    drop_after_tokens: int | None = None
    stream_reply: StreamReply = "sse"
    embedding_dim: int = 64

    def __post_init__(self) -> None:
        for name in ("token_latency_ms", "first_token_latency_ms"):
            value: object = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
            setattr(self, name, float(value))
        _check_int(self, "fail_status", low=400, high=599, optional=True)
        _check_int(self, "fail_next", low=-1)
        if not isinstance(self.hang, bool):
            raise ValueError(f"hang must be a boolean, got {self.hang!r}")
        _check_int(self, "hang_after_tokens", low=0, optional=True)
        _check_int(self, "drop_after_tokens", low=0, optional=True)
        if self.stream_reply not in STREAM_REPLIES:
            choices = ", ".join(STREAM_REPLIES)
            raise ValueError(f"stream_reply must be one of {choices}, got {self.stream_reply!r}")
        _check_int(self, "embedding_dim", low=1, high=65536)


def _check_int(
    obj: Behaviour, name: str, *, low: int, high: int | None = None, optional: bool = False
) -> None:
    value: object = getattr(obj, name)
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        none = " or null" if optional else ""
        raise ValueError(f"{name} must be an integer {bounds}{none}, got {value!r}")


def _updated(current: Behaviour, changes: Mapping[str, Any]) -> Behaviour:
    """Return `current` with `changes` applied; raise ValueError on unknown or bad fields."""
    known = {f.name for f in dataclasses.fields(Behaviour)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown behaviour field(s): {', '.join(unknown)}")
    return dataclasses.replace(current, **changes)


# --------------------------------------------------------------------------- counters

_COUNTERS = (
    "chat_requests",
    "chat_failures_injected",
    "chat_in_flight",
    "chat_disconnected",
    "streams_started",
    "streams_completed",
    "streams_disconnected",
    "streams_dropped",
    "tokens_sent",
    "embedding_requests",
)


@dataclass
class _Stats:
    chat_requests: int = 0
    chat_failures_injected: int = 0
    chat_in_flight: int = 0  # a gauge: requests being answered right now
    chat_disconnected: int = 0  # any chat request whose client left before its end
    streams_started: int = 0  # accepted streaming requests, even those hung before headers
    streams_completed: int = 0
    streams_disconnected: int = 0
    streams_dropped: int = 0  # cut on purpose by drop_after_tokens
    tokens_sent: int = 0
    embedding_requests: int = 0
    last_request: dict[str, Any] | None = None


class _Runtime:
    """The mutable state of one app: behaviour, counters and the shutdown signal."""

    def __init__(self, behaviour: Behaviour, model: str) -> None:
        self.model = model
        self.initial = dataclasses.replace(behaviour)
        self.behaviour = dataclasses.replace(behaviour)
        self.stats = _Stats()
        self.closing = asyncio.Event()
        self._changed = asyncio.Event()
        self._waiters = 0

    def count(self, name: str, delta: int = 1) -> None:
        setattr(self.stats, name, getattr(self.stats, name) + delta)
        self._notify()

    def reset(self) -> None:
        in_flight = self.stats.chat_in_flight
        self.behaviour = dataclasses.replace(self.initial)
        self.stats = _Stats(chat_in_flight=in_flight)
        self._notify()

    def _notify(self) -> None:
        if self._waiters:  # no Event churn on the hot path when nobody waits
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def wait_until(self, counter: str, low: int | None, high: int | None) -> None:
        """Return once `low <= counter <= high` (a bound that is None is not checked)."""
        while True:
            value: int = getattr(self.stats, counter)
            if (low is None or value >= low) and (high is None or value <= high):
                return
            self._waiters += 1
            try:
                await self._changed.wait()
            finally:
                self._waiters -= 1

    def snapshot(self) -> dict[str, Any]:
        return dataclasses.asdict(self.stats)


# --------------------------------------------------------------------------- answers


def _text_of(content: object) -> str:
    """The text of an OpenAI message `content`: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        return "\n".join(parts)
    return ""


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def _source_sentence(lines: list[str], wanted: set[str]) -> str:
    """The sentences of a source that share most words with the question (at most
    `SENTENCES_PER_SOURCE`, in source order; the first sentence when none shares a word),
    after dropping a leading title, headings, code fence lines and list/quote marks."""
    body = [line.strip() for line in lines]
    while body and not body[0]:
        body.pop(0)
    if body and (match := _PAREN_TITLE.match(body[0])):
        body[0] = match.group(1)
    if body and _TITLE_LINE.match(body[0]):
        body.pop(0)
    body = [
        _MARKUP.sub("", line)
        for line in body
        if not _FENCE.match(line) and not _HEADING.match(line)
    ]
    text = " ".join(" ".join(body).split())
    sentences = [s.strip() for s in _SENTENCES.findall(text)] or [text]
    scored = sorted(enumerate(sentences), key=lambda p: (-len(wanted & _terms(p[1])), p[0]))
    best = [p for p in scored[:SENTENCES_PER_SOURCE] if wanted & _terms(p[1])] or scored[:1]
    return " ".join(s for _, s in sorted(best))


def _sources(text: str) -> list[tuple[int, str]]:
    """`(number, best sentence)` of each non-empty source in `text`, in order."""
    found: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    question = ""
    for line in text.splitlines():
        if match := _SOURCE_START.match(line):
            current = [match.group(2) or ""]
            found.append((int(match.group(1)), current))
        elif _QUESTION_LINE.match(line):
            current = None
            question = line.split(":", 1)[1]
        elif current is not None:
            current.append(line)
    wanted = _terms(question)
    pairs = [(number, _source_sentence(lines, wanted)) for number, lines in found]
    return [(number, sentence) for number, sentence in pairs if sentence]


def answer_for(messages: Sequence[Mapping[str, Any]]) -> str:
    """The full answer the server gives to these chat messages (see the module docstring)."""
    user = [m for m in messages if m.get("role") == "user"]
    sources = _sources(_text_of(user[-1].get("content"))) if user else []
    if not sources:
        return NO_ANSWER
    cited = " ".join(f"{sentence} [{number}]" for number, sentence in sources[:ANSWER_SOURCES])
    return ANSWER_PREFIX + cited


def split_tokens(text: str) -> list[str]:
    """The streamed tokens of `text`; they concatenate back to `text` (less leading space)."""
    return _TOKEN.findall(text)


def _prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(len(_text_of(m.get("content")).split()) + 4 for m in messages)


def embed_text(text: str, dim: int) -> list[float]:
    """Deterministic L2-normalised embedding: signed hashed bag of lowercase words."""
    vector = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        bits = int.from_bytes(digest, "little")
        vector[bits % dim] += -1.0 if bits >> 63 else 1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


# --------------------------------------------------------------------------- HTTP helpers


async def _json_object(request: Request) -> dict[str, Any] | Response:
    """The request's JSON object body, or the 400 error to answer with."""
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "The request body is not valid JSON.")
    if not isinstance(body, dict):
        return _error(400, "The request body must be a JSON object.")
    return body


def _error(status: int, message: str) -> JSONResponse:
    """An OpenAI/vLLM-style error response."""
    try:
        phrase = HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:  # a status without a standard name, e.g. 599
        phrase = "API"
    err_type = phrase if phrase.endswith("Error") else phrase + "Error"
    body = {"error": {"message": message, "type": err_type, "param": None, "code": status}}
    return JSONResponse(body, status_code=status)


def _json_bytes(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class _AbruptClose(Exception):
    """Raised out of the ASGI app to make uvicorn close the connection mid-response."""


class _QuietAbruptClose(logging.Filter):
    """Keep uvicorn from logging our deliberate `_AbruptClose` as an application error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _AbruptClose)


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietAbruptClose) for f in logger.filters):
        logger.addFilter(_QuietAbruptClose())


async def _forever() -> None:
    await asyncio.get_running_loop().create_future()


async def _sleep_ms(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


Outcome = Literal["done", "dropped", "disconnected", "closing"]


async def _guard(
    job: Coroutine[Any, Any, None], receive: Receive, closing: asyncio.Event
) -> Outcome:
    """Run `job` until it ends, the client disconnects or the server shuts down.

    The job is cancelled and awaited before this returns, so nothing it does (such as
    counting tokens) can happen after the outcome is known.
    """
    job_task = asyncio.ensure_future(job)
    disconnect_task = asyncio.ensure_future(_wait_disconnect(receive))
    closing_task = asyncio.ensure_future(closing.wait())
    tasks = (job_task, disconnect_task, closing_task)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if job_task.done() and not job_task.cancelled():
        exc = job_task.exception()
        if exc is None:
            return "done"
        if isinstance(exc, _AbruptClose):
            return "dropped"
        raise exc
    if disconnect_task.done() and not disconnect_task.cancelled():
        return "disconnected"
    return "closing"


# --------------------------------------------------------------------------- chat


@dataclass
class _Plan:
    """Everything one chat request will do, fixed when it arrives."""

    model: str
    stream: bool
    include_usage: bool
    tokens: list[str]
    finish_reason: str
    prompt_tokens: int
    behaviour: Behaviour
    completion_id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def usage(self) -> dict[str, int]:
        completion = len(self.tokens)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


class _ChatResponder(Response):
    """Answers one accepted chat request, streaming or not, with faults injected."""

    def __init__(self, runtime: _Runtime, plan: _Plan) -> None:
        super().__init__()
        self.runtime = runtime
        self.plan = plan
        self.started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rt, plan = self.runtime, self.plan
        rt.count("chat_in_flight")
        if plan.stream:
            rt.count("streams_started")
        try:
            outcome = await _guard(self._job(send), receive, rt.closing)
        finally:
            rt.count("chat_in_flight", -1)
        if outcome == "done":
            if plan.stream:
                rt.count("streams_completed")
        elif outcome == "disconnected":
            rt.count("chat_disconnected")
            if plan.stream:
                rt.count("streams_disconnected")
        elif outcome == "dropped":
            rt.count("streams_dropped")
            raise _AbruptClose("drop_after_tokens")
        elif self.started:
            raise _AbruptClose("server shutting down")
        else:
            await _error(503, "The server is shutting down.")(scope, receive, send)

    def _job(self, send: Send) -> Coroutine[Any, Any, None]:
        plan = self.plan
        if plan.behaviour.hang and not (
            plan.stream and plan.behaviour.hang_after_tokens is not None
        ):
            return _forever()
        if not plan.stream or plan.behaviour.stream_reply == "json":
            return self._complete(send)
        if plan.behaviour.stream_reply == "garbage":
            return self._json(send, _NONSENSE)
        if plan.behaviour.stream_reply == "garbage_events":
            return self._garbage_events(send)
        return self._stream(send)

    async def _complete(self, send: Send) -> None:
        plan, b = self.plan, self.plan.behaviour
        await _sleep_ms(
            b.first_token_latency_ms + b.token_latency_ms * max(len(plan.tokens) - 1, 0)
        )
        completion = {
            "id": plan.completion_id,
            "object": "chat.completion",
            "created": plan.created,
            "model": plan.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(plan.tokens)},
                    "logprobs": None,
                    "finish_reason": plan.finish_reason,
                }
            ],
            "usage": plan.usage(),
        }
        await self._json(send, completion)
        self.runtime.count("tokens_sent", len(plan.tokens))

    async def _json(self, send: Send, obj: object) -> None:
        body = _json_bytes(obj)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        self.started = True
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _garbage_events(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        self.started = True
        event = b"data: " + _json_bytes(_NONSENSE) + b"\n\n"
        body = event * 2 + b"data: [DONE]\n\n"
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        plan = self.plan
        chunk: dict[str, Any] = {
            "id": plan.completion_id,
            "object": "chat.completion.chunk",
            "created": plan.created,
            "model": plan.model,
            "choices": choices,
        }
        if plan.include_usage:
            chunk["usage"] = usage
        return b"data: " + _json_bytes(chunk) + b"\n\n"

    @staticmethod
    def _choice(delta: dict[str, str], finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

    async def _interrupt(self, sent: int, *, last: bool) -> None:
        """Drop or stall here if the plan says so after `sent` tokens."""
        b = self.plan.behaviour
        if b.drop_after_tokens is not None and (last or sent >= b.drop_after_tokens):
            raise _AbruptClose("drop_after_tokens")
        if b.hang_after_tokens is not None and (last or sent >= b.hang_after_tokens):
            await _forever()

    async def _stream(self, send: Send) -> None:
        plan, b = self.plan, self.plan.behaviour

        async def event(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        self.started = True
        await _sleep_ms(b.first_token_latency_ms)
        await event(self._chunk(self._choice({"role": "assistant", "content": ""})))
        for sent, token in enumerate(plan.tokens):
            await self._interrupt(sent, last=False)
            if sent:
                await _sleep_ms(b.token_latency_ms)
            await event(self._chunk(self._choice({"content": token})))
            self.runtime.count("tokens_sent")
        await self._interrupt(len(plan.tokens), last=True)
        if b.stream_reply != "no_finish":
            await event(self._chunk(self._choice({}, plan.finish_reason)))
        if plan.include_usage:
            await event(self._chunk([], plan.usage()))
        await event(b"data: [DONE]\n\n")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _optional_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


# --------------------------------------------------------------------------- app


class _Endpoints:
    def __init__(self, runtime: _Runtime) -> None:
        self.rt = runtime

    async def models(self, request: Request) -> Response:
        card = {
            "id": self.rt.model,
            "object": "model",
            "created": int(time.time()),
            "owned_by": OWNER,
        }
        return JSONResponse({"object": "list", "data": [card]})

    async def health(self, request: Request) -> Response:
        return Response(status_code=200)

    async def chat(self, request: Request) -> Response:
        rt = self.rt
        rt.count("chat_requests")
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        rt.stats.last_request = body
        b = rt.behaviour
        if b.fail_status is not None and b.fail_next != 0:
            if b.fail_next > 0:
                b.fail_next -= 1
            rt.count("chat_failures_injected")
            return _error(b.fail_status, f"Injected failure (HTTP {b.fail_status}).")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "`messages` must be a non-empty list.")
        if not all(isinstance(m, dict) for m in messages):
            return _error(400, "Each message must be an object.")
        model = body.get("model")
        if not isinstance(model, str):
            return _error(400, "`model` must be a string.")
        if model != rt.model:
            return _error(404, f"The model `{model}` does not exist.")
        try:
            max_tokens = _optional_int(body, "max_tokens")
            if max_tokens is None:
                max_tokens = _optional_int(body, "max_completion_tokens")
        except ValueError as exc:
            return _error(400, str(exc))
        stream = body.get("stream") is True
        tokens = split_tokens(answer_for(messages))
        if stream and b.stream_reply == "empty":
            tokens = []
        finish_reason = "stop"
        if max_tokens is not None and max_tokens < len(tokens):
            tokens, finish_reason = tokens[:max_tokens], "length"
        options = body.get("stream_options")
        plan = _Plan(
            model=model,
            stream=stream,
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            tokens=tokens,
            finish_reason=finish_reason,
            prompt_tokens=_prompt_tokens(messages),
            behaviour=dataclasses.replace(b),
        )
        return _ChatResponder(rt, plan)

    async def embeddings(self, request: Request) -> Response:
        rt = self.rt
        rt.count("embedding_requests")
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return _error(400, "`input` must be a string or a non-empty list of strings.")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            return _error(400, "`encoding_format` must be `float` or `base64`.")
        try:
            dim = _optional_int(body, "dimensions") or rt.behaviour.embedding_dim
        except ValueError as exc:
            return _error(400, str(exc))
        data: list[dict[str, Any]] = []
        for index, text in enumerate(texts):
            vector = embed_text(text, dim)
            encoded: list[float] | str = vector
            if encoding == "base64":
                encoded = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        words = sum(len(_WORD.findall(t)) for t in texts)
        model = body.get("model")
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": model if isinstance(model, str) else rt.model,
                "usage": {"prompt_tokens": words, "total_tokens": words},
            }
        )

    async def control(self, request: Request) -> Response:
        try:
            changes = await request.json()
        except ValueError:
            return _error(400, "The request body is not valid JSON.")
        if not isinstance(changes, dict):
            return _error(400, "The request body must be a JSON object.")
        try:
            self.rt.behaviour = _updated(self.rt.behaviour, changes)
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        return JSONResponse(dataclasses.asdict(self.rt.behaviour))

    async def reset(self, request: Request) -> Response:
        self.rt.reset()
        return JSONResponse(dataclasses.asdict(self.rt.behaviour))

    async def stats(self, request: Request) -> Response:
        """Counters; with `?wait=COUNTER&min=N&max=M&timeout=S`, first wait for the bounds."""
        params = request.query_params
        counter = params.get("wait")
        if counter is None:
            return JSONResponse(self.rt.snapshot())
        if counter not in _COUNTERS:
            return _error(400, f"unknown counter {counter!r}")
        try:
            low = int(params["min"]) if "min" in params else None
            high = int(params["max"]) if "max" in params else None
            timeout = min(float(params.get("timeout", "10")), _MAX_WAIT_S)
        except ValueError:
            return _error(400, "`min`/`max` must be integers and `timeout` a number.")
        met = True
        try:
            async with asyncio.timeout(timeout):
                await self.rt.wait_until(counter, low, high)
        except TimeoutError:
            met = False
        return JSONResponse(self.rt.snapshot(), status_code=200 if met else 408)


def create_app(behaviour: Behaviour | None = None, model: str = DEFAULT_MODEL) -> Starlette:
    """The test LLM as an ASGI app; its state lives in `app.state.testllm`."""
    _install_log_filter()
    runtime = _Runtime(behaviour or Behaviour(), model)
    ep = _Endpoints(runtime)
    routes = [
        Route("/v1/models", ep.models, methods=["GET"]),
        Route("/health", ep.health, methods=["GET"]),
        Route("/v1/chat/completions", ep.chat, methods=["POST"]),
        Route("/v1/embeddings", ep.embeddings, methods=["POST"]),
        Route("/_control", ep.control, methods=["POST"]),
        Route("/_reset", ep.reset, methods=["POST"]),
        Route("/_stats", ep.stats, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.testllm = runtime
    return app


# --------------------------------------------------------------------------- serving


class _StubServer(uvicorn.Server):
    """uvicorn.Server that signals readiness, ends pending requests on shutdown and,
    if asked, handles SIGINT/SIGTERM itself (uvicorn re-raises them after shutdown,
    which would kill the process instead of exiting 0)."""

    def __init__(self, config: uvicorn.Config, runtime: _Runtime, *, signals: bool) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.signals = signals
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.runtime.closing.set()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if not self.signals:
            yield
            return
        loop = asyncio.get_running_loop()
        handled = (signal.SIGINT, signal.SIGTERM)
        for sig in handled:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be explicit: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says IPPROTO_TCP, and without it every keep-alive request waits
    # ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _make_server(app: Starlette, *, signals: bool, log_config: bool) -> _StubServer:
    extra: dict[str, Any] = {} if log_config else {"log_config": None}
    config = uvicorn.Config(app, log_level="warning", access_log=False, **extra)
    runtime: _Runtime = app.state.testllm
    return _StubServer(config, runtime, signals=signals)


async def _start(server: _StubServer, sock: socket.socket) -> asyncio.Task[None]:
    """Start serving on `sock`; return the serve task once listening."""
    serve_task = asyncio.create_task(server.serve(sockets=[sock]))
    ready_task = asyncio.create_task(server.ready.wait())
    await asyncio.wait((serve_task, ready_task), return_when=asyncio.FIRST_COMPLETED)
    if not ready_task.done():
        ready_task.cancel()
        await serve_task  # re-raises a start-up error, if any
        raise RuntimeError("testllm server stopped before it was ready")
    return serve_task


@contextlib.asynccontextmanager
async def serve_testllm(
    behaviour: Behaviour | None = None, *, model: str = DEFAULT_MODEL, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """Serve the test LLM in this event loop on a free port; yield its base URL.

    The URL has no `/v1` suffix. Leaves logging configuration and signal handlers alone.
    """
    app = create_app(behaviour, model)
    server = _make_server(app, signals=False, log_config=False)
    with _bind(host, 0) as sock:
        serve_task = await _start(server, sock)
        try:
            yield _base_url(host, sock.getsockname()[1])
        finally:
            server.should_exit = True
            await serve_task


async def _run(app: Starlette, host: str, port: int) -> int:
    server = _make_server(app, signals=True, log_config=True)
    try:
        sock = _bind(host, port)
    except OSError as exc:
        print(f"testllm: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    with sock:
        try:
            serve_task = await _start(server, sock)
        except RuntimeError as exc:
            print(f"testllm: {exc}", file=sys.stderr)
            return 1
        print(f"READY {_base_url(host, sock.getsockname()[1])}", flush=True)
        await serve_task
    return 0


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--token-latency-ms", type=float, default=0.0)
    parser.add_argument("--first-token-latency-ms", type=float, default=0.0)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument(
        "--stream-reply",
        choices=STREAM_REPLIES,
        default="sse",
        help="the shape of the reply to streaming requests (a fault to inject)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    args = _parse_args(argv)
    try:
        behaviour = Behaviour(
            token_latency_ms=args.token_latency_ms,
            first_token_latency_ms=args.first_token_latency_ms,
            embedding_dim=args.embedding_dim,
            stream_reply=args.stream_reply,
        )
    except ValueError as exc:
        print(f"testllm: {exc}", file=sys.stderr)
        return 2
    app = create_app(behaviour, args.model)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_run(app, args.host, args.port))


def _loop_factory() -> Any:
    """uvloop's loop factory when installed (faster for benchmarks), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
