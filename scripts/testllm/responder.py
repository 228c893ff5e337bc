"""The reply to one accepted chat request: its `Plan` (everything it will do, fixed when it
arrives) and the `ChatResponder` that writes it, streamed or not, with the planned faults
injected and the counters kept."""

from __future__ import annotations

import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from scripts.testllm.connection import AbruptClose, cut, forever, guard, sleep_ms
from scripts.testllm.faults import NONSENSE, Behaviour
from scripts.testllm.replies import error, json_bytes
from scripts.testllm.state import Runtime

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


@dataclass
class Plan:
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


async def _drop() -> None:
    raise AbruptClose("drop_before_headers")


class ChatResponder(Response):
    """Answers one accepted chat request, streaming or not, with faults injected."""

    def __init__(self, runtime: Runtime, plan: Plan) -> None:
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
            outcome = await guard(self._job(send), receive, rt.closing)
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
            rt.count("chat_dropped")
            if plan.stream:
                rt.count("streams_dropped")
            if not await cut(scope, receive, plan.behaviour.drop_with):
                raise AbruptClose("dropped on purpose")
        elif self.started:
            raise AbruptClose("server shutting down")
        else:
            await error(503, "The server is shutting down.")(scope, receive, send)

    def _job(self, send: Send) -> Coroutine[Any, Any, None]:
        plan = self.plan
        if plan.behaviour.drop_before_headers:
            return _drop()
        if plan.behaviour.hang and not (
            plan.stream and plan.behaviour.hang_after_tokens is not None
        ):
            return forever()
        if not plan.stream or plan.behaviour.stream_reply == "json":
            return self._complete(send)
        if plan.behaviour.stream_reply == "garbage":
            return self._json(send, NONSENSE)
        if plan.behaviour.stream_reply == "garbage_events":
            return self._garbage_events(send)
        return self._stream(send)

    async def _complete(self, send: Send) -> None:
        plan, b = self.plan, self.plan.behaviour
        await sleep_ms(b.first_token_latency_ms + b.token_latency_ms * max(len(plan.tokens) - 1, 0))
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
        body = json_bytes(obj)
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
        event = b"data: " + json_bytes(NONSENSE) + b"\n\n"
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
        return b"data: " + json_bytes(chunk) + b"\n\n"

    @staticmethod
    def _choice(delta: dict[str, str], finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

    async def _interrupt(self, sent: int, *, last: bool) -> None:
        """Drop or stall here if the plan says so after `sent` tokens."""
        b = self.plan.behaviour
        if b.drop_after_tokens is not None and (last or sent >= b.drop_after_tokens):
            raise AbruptClose("drop_after_tokens")
        if b.hang_after_tokens is not None and (last or sent >= b.hang_after_tokens):
            await forever()

    async def _stream(self, send: Send) -> None:
        plan, b = self.plan, self.plan.behaviour

        async def event(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        self.started = True
        await sleep_ms(b.first_token_latency_ms)
        first = time.perf_counter()
        await event(self._chunk(self._choice({"role": "assistant", "content": ""})))
        for sent, token in enumerate(plan.tokens):
            await self._interrupt(sent, last=False)
            if sent and b.answer_tokens is None:
                await sleep_ms(b.token_latency_ms)
            elif sent:  # on a schedule: a timer's rounding (1 ms in uvloop) does not add up
                await sleep_ms(sent * b.token_latency_ms - (time.perf_counter() - first) * 1000)
            await event(self._chunk(self._choice({"content": token})))
            self.runtime.count("tokens_sent")
        await self._interrupt(len(plan.tokens), last=True)
        if b.stream_reply != "no_finish":
            await event(self._chunk(self._choice({}, plan.finish_reason)))
        if plan.include_usage:
            await event(self._chunk([], plan.usage()))
        await event(b"data: [DONE]\n\n")
        await send({"type": "http.response.body", "body": b"", "more_body": False})
