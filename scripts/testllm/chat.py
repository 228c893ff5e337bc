"""The test LLM's `POST /v1/chat/completions`: an injected failure, or the request checked
as vLLM checks it and answered by a `ChatResponder` following the request's `Plan` (with
the answer text of `answers`, or the rewrite of `condense` for ragq's condensation prompt)."""

from __future__ import annotations

import dataclasses

from starlette.requests import Request
from starlette.responses import Response

from scripts.testllm.answers import answer_for, exact_tokens, prompt_tokens, split_tokens
from scripts.testllm.condense import condensed_for, is_condensation
from scripts.testllm.replies import error, json_object, optional_int
from scripts.testllm.responder import ChatResponder, Plan
from scripts.testllm.state import Runtime


async def chat(rt: Runtime, request: Request) -> Response:
    """Answer one chat request with the behaviour in force when it arrives."""
    rt.count("chat_requests")
    body = await json_object(request)
    if isinstance(body, Response):
        return body
    rt.stats.last_request = body
    b = rt.behaviour
    if b.fail_status is not None and b.fail_next != 0:
        if b.fail_next > 0:
            b.fail_next -= 1
        rt.count("chat_failures_injected")
        return error(b.fail_status, f"Injected failure (HTTP {b.fail_status}).")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return error(400, "`messages` must be a non-empty list.")
    if not all(isinstance(m, dict) for m in messages):
        return error(400, "Each message must be an object.")
    condensing = is_condensation(messages)
    if condensing:
        rt.count("condense_requests")
        if b.condense_fail_status is not None:
            rt.count("chat_failures_injected")
            return error(b.condense_fail_status, "Injected condensation failure.")
    model = body.get("model")
    if not isinstance(model, str):
        return error(400, "`model` must be a string.")
    if model != rt.model:
        return error(404, f"The model `{model}` does not exist.")
    try:
        max_tokens = optional_int(body, "max_tokens")
        if max_tokens is None:
            max_tokens = optional_int(body, "max_completion_tokens")
    except ValueError as exc:
        return error(400, str(exc))
    stream = body.get("stream") is True
    answer = condensed_for(messages) if condensing else answer_for(messages, cite=b.cite)
    tokens = split_tokens(answer)
    if b.answer_tokens is not None and not condensing:
        tokens = exact_tokens(tokens, b.answer_tokens)
    if stream and b.stream_reply == "empty":
        tokens = []
    finish_reason = "stop"
    if max_tokens is not None and max_tokens < len(tokens):
        tokens, finish_reason = tokens[:max_tokens], "length"
    options = body.get("stream_options")
    plan = Plan(
        model=model,
        stream=stream,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        tokens=tokens,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens(messages),
        behaviour=dataclasses.replace(b),
    )
    return ChatResponder(rt, plan)
