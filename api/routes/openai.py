"""An OpenAI-compatible surface: `GET /v1/models` and `POST /v1/chat/completions` (plain
and streaming), answered by the same RAG job path as `POST /v1/rag` — admission, limits,
budgets, the answer cache and degradation all apply (docs/API.md, OpenAI-compatible).

The conversation's last user message is the question (a follow-up is asked together with
the previous question, and carries the turns before it so that a worker with an LLM can
rewrite it: api/condense.py); the answer cites its sources as `[n]` markers,
and the sources themselves travel in the `citations` extension field. Errors on these
routes have OpenAI's shape (api/errors.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.condense import conversation_before, follows_up, standalone_question
from api.deps import ApiKeyDep, ClientsDep
from api.jsonbody import JsonBodyRoute
from api.openai_schemas import CHAT_COMPLETION, CHUNK_EVENT, MODEL_LIST
from api.responses import event_stream, openai_errors
from api.sse import follow, sse_response
from api.submit import submit
from shared.errors import Conflict, InvalidInput, Timeout
from shared.events import AnswerDelta, JobCompleted, JobFailed
from shared.metrics import CONDENSE
from shared.schemas.jobs import JobCreate, JobPublic, JobResult
from shared.tiers import llm_target

router = APIRouter(prefix="/v1", tags=["openai"], route_class=JsonBodyRoute)
log = structlog.get_logger("api.openai")

DEFAULT_MODEL = "ragq"  # always accepted: the key's tier's own model
WAIT_S = 120.0  # a non-streaming completion waits this long for its job


class ChatMessage(BaseModel):
    """One message; content as text or as OpenAI's list of parts (text parts are used)."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return " ".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


class ChatRequest(BaseModel):
    """`POST /v1/chat/completions` body: OpenAI's fields ragq uses (others are ignored),
    plus `top_k`, how many chunks to retrieve."""

    model_config = ConfigDict(extra="ignore")

    model: str = DEFAULT_MODEL
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: bool = False
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    max_tokens: Annotated[int | None, Field(ge=1, le=4096)] = None
    max_completion_tokens: Annotated[int | None, Field(ge=1, le=4096)] = None
    top_k: Annotated[int, Field(ge=1, le=50)] = 5

    def job(self) -> JobCreate:
        """The RAG job this conversation asks for."""
        turns = [m.text() for m in self.messages if m.role == "user" and m.text().strip()]
        if not turns or self.messages[-1].role != "user":
            raise InvalidInput(
                "The last message must be the user's question.",
                extra={"errors": [{"loc": ["body", "messages"], "msg": "no user question"}]},
            )
        earlier = conversation_before([(m.role, m.text()) for m in self.messages[:-1]])
        conversation = earlier if follows_up(turns) else []
        if earlier and not conversation:
            CONDENSE.labels(outcome="skipped").inc()  # it stands alone: no condensation call
        return JobCreate(
            question=standalone_question(turns),
            conversation=conversation,
            top_k=self.top_k,
            temperature=self.temperature,
            max_tokens=self.max_completion_tokens or self.max_tokens or 512,
            model=None if self.model == DEFAULT_MODEL else self.model,
        )


@router.get("/models", responses={200: {"content": {"application/json": {"schema": MODEL_LIST}}}})
async def list_models(clients: ClientsDep, key: ApiKeyDep) -> dict[str, Any]:
    """The models this key's tier may name (`ragq`: the tier's own)."""
    target = llm_target(clients.settings, key.tier)
    names = [DEFAULT_MODEL, *sorted(target.models | {target.model})]
    data = [{"id": n, "object": "model", "created": 0, "owned_by": "ragq"} for n in names]
    return {"object": "list", "data": data}


@router.post(
    "/chat/completions",
    response_model=None,
    responses={
        200: {
            "description": "The answer (`chat.completion`), or its chunks with `stream: true`",
            "content": {
                "application/json": {"schema": CHAT_COMPLETION},
                **event_stream(CHUNK_EVENT),
            },
        },
        **openai_errors(
            {
                400: "Invalid request: the schema, a model the key's tier does not serve, or "
                "no user question last (`invalid_request_error`)",
                409: "The job ended `failed` or `cancelled`",
                504: f"The job is still running after {WAIT_S:g} s",
            }
        ),
    },
)
async def chat_completions(
    request: Request, body: ChatRequest, clients: ClientsDep, key: ApiKeyDep
) -> dict[str, Any] | EventSourceResponse:
    """Answer the conversation's question from the tenant's documents, as OpenAI would."""
    job, _ = await submit(request, clients, key, body.job(), None)
    model = body.model
    if body.stream:
        return sse_response(_chunks(clients, job, model), clients)
    await clients.jobs.wait_terminal(job.id, WAIT_S)
    record = await clients.jobs.get(job.id)
    done = record.public() if record is not None else job
    if done.status == "completed" and done.result is not None:
        return _completion(done, done.result, model)
    if done.status in ("failed", "cancelled"):
        why = done.error.message if done.error else done.status
        raise Conflict(f"Job {job.id} ended {done.status}: {why}", extra={"job_id": job.id})
    raise Timeout(f"Job {job.id} is still running after {WAIT_S:g} s.", extra={"job_id": job.id})


def _extension(job: JobPublic, result: JobResult) -> dict[str, Any]:
    return {
        "citations": [c.model_dump(mode="json") for c in result.citations],
        "ragq": {
            "job_id": job.id,
            "degraded": result.degraded,
            "degraded_reason": result.degraded_reason,
            "grounded": result.grounded,
            "cached": result.cached,
        },
    }


def _usage(result: JobResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.usage.prompt_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "total_tokens": result.usage.prompt_tokens + result.usage.completion_tokens,
    }


def _completion(job: JobPublic, result: JobResult, model: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": result.answer}
    return {
        "id": f"chatcmpl-{job.id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model or model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(result),
        **_extension(job, result),
    }


async def _chunks(
    clients: ClientsDep, job: JobPublic, model: str
) -> AsyncIterator[ServerSentEvent]:
    """The job's events as `chat.completion.chunk`s, then `[DONE]`."""
    base = {"id": f"chatcmpl-{job.id}", "object": "chat.completion.chunk", "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> ServerSentEvent:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        body = {**base, "created": int(time.time()), "choices": [choice], **extra}
        return ServerSentEvent(data=json.dumps(body, ensure_ascii=False))

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for stored in follow(clients, job.id, 0):
            event = stored.parsed()
            if isinstance(event, AnswerDelta):
                yield chunk({"content": event.delta})
            elif isinstance(event, JobCompleted) and event.job.result is not None:
                result = event.job.result
                yield chunk({}, "stop", usage=_usage(result), **_extension(event.job, result))
                yield ServerSentEvent(data="[DONE]")
            elif isinstance(event, JobFailed) or stored.terminal:
                message = event.error.message if isinstance(event, JobFailed) else "cancelled"
                error = {"message": f"Job {job.id} ended: {message}", "type": "api_error"}
                yield ServerSentEvent(data=json.dumps({"error": {**error, "code": None}}))
    except RedisError as exc:  # the response has started: end it
        log.warning("sse.redis_unavailable", job_id=job.id, error=str(exc))
