"""The one LLM wrapper: AsyncOpenAI against the configured OpenAI-compatible endpoints.

Retries live in one layer, here (tenacity; the SDK's own are off), and only until the
first token: an attempt is "open the stream and read up to its first text", so text the
caller has seen is never asked for twice. An attempt walks the replicas in the call's
order (`workers.rag.routing`: by prompt prefix, under a load cap), past every endpoint
whose circuit breaker (`workers.rag.breaker`, shared by every worker through Redis) is
open, and on to the next replica at once when one fails. Vendor exceptions
are translated here into `UpstreamTimeout` / `UpstreamUnavailable`; `CircuitOpen` when
every endpoint's breaker is open before this call made any request of its own, without a
network call or a backoff sleep. Once requests of its own have failed, an attempt that
every breaker refuses (often opened by those very failures) ends the call with its last
real failure instead, so a timeout is reported as a timeout.

How a reply is read and what counts as a valid one is `workers.rag.replies`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import cast

import httpx2
import openai
from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from redis.asyncio import Redis
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from shared.config import Settings
from shared.errors import CircuitOpen, UpstreamTimeout, UpstreamUnavailable
from shared.logging import get_logger
from shared.redis_keys import Keys
from workers.rag.breaker import Admission, CircuitBreaker
from workers.rag.replies import Completion, read_reply
from workers.rag.routing import Router, Slot

log = get_logger("workers.llm")


@dataclass(frozen=True, slots=True)
class _Request:
    messages: list[ChatCompletionMessageParam]
    max_tokens: int
    temperature: float


@dataclass(slots=True)
class _Opened:
    """A reply whose first text arrived (`first`), or that ended, validly, without any (None)."""

    stream: AsyncStream[ChatCompletionChunk]
    texts: AsyncGenerator[str, None]  # the rest of its texts (`read_reply`)
    first: str | None
    slot: Slot  # counted in flight until the stream is closed


class LLMClient:
    """Streams chat completions from one of several vLLM replicas, picked by prompt prefix."""

    def __init__(
        self,
        settings: Settings,
        *,
        redis: Redis,
        keys: Keys,
        base_urls: list[str] | None = None,
        model: str | None = None,
    ) -> None:
        timeout = httpx2.Timeout(
            connect=min(5.0, settings.llm_timeout_s),
            read=settings.llm_timeout_s,  # the longest silence between two streamed chunks
            write=settings.llm_timeout_s,
            pool=settings.llm_timeout_s,
        )
        self._targets = list(settings.llm_base_urls if base_urls is None else base_urls)
        self._clients = [
            openai.AsyncOpenAI(
                base_url=url,
                api_key=settings.llm_api_key.get_secret_value(),
                timeout=timeout,
                max_retries=0,
            )
            for url in self._targets
        ]
        if not self._clients:
            raise ValueError("no LLM endpoint configured")
        self.default_model = model or settings.llm_model
        self._breaker = CircuitBreaker.from_settings(redis, keys, settings)
        # a call never outlives its job, so a killed worker's calls stop counting by then
        self.router = Router(
            redis,
            keys,
            self._targets,
            load_factor=settings.llm_load_factor,
            lease_s=settings.job_timeout_s,
        )
        self._retries = settings.llm_retries  # extra attempts
        self._backoff_s = settings.llm_retry_backoff_s
        self._backoff_max_s = settings.llm_retry_backoff_max_s

    async def stream(
        self,
        messages: list[dict[str, str]],
        *,
        completion: Completion,
        max_tokens: int,
        temperature: float,
        affinity: str,
    ) -> AsyncGenerator[str, None]:
        """Yield content deltas; `completion.usage` is filled in from the final chunk."""
        request = _Request(
            cast(list[ChatCompletionMessageParam], messages), max_tokens, temperature
        )
        failures: list[Exception] = []  # this call's own endpoint failures, across attempts
        started = time.perf_counter()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_random_exponential(multiplier=self._backoff_s, max=self._backoff_max_s),
            retry=retry_if_exception(_endpoint_failed),  # never CircuitOpen: no sleep
            before_sleep=_log_retry,
            reraise=True,
        )
        with _translated():
            try:
                opened: _Opened = await retrying(
                    self._attempt, self.router.order(affinity), request, completion, failures
                )
            except CircuitOpen:
                if not failures:  # refused before any request of its own
                    raise
                raise failures[-1] from None  # the breakers this call's failures opened
        try:
            if opened.first is None:
                raise UpstreamUnavailable(
                    f"LLM replied without text (finish_reason {completion.finish_reason})"
                )
            with _translated():  # from here on a failure is raised, never retried
                text: str | None = opened.first
                while text is not None:
                    if completion.first_token_s is None:
                        completion.first_token_s = time.perf_counter() - started
                    yield text
                    text = await anext(opened.texts, None)
        finally:
            try:
                try:
                    await opened.texts.aclose()
                finally:
                    await opened.stream.close()
            finally:
                await self.router.release(opened.slot)

    async def _attempt(
        self,
        order: list[int],
        request: _Request,
        completion: Completion,
        failures: list[Exception],
    ) -> _Opened:
        """One try: walk the endpoints in the call's order, taking the first under the load
        cap whose breaker allows it, up to its first text. An endpoint that fails is counted
        by its breaker (and appended to `failures`) and the walk moves on at once, so a dead
        replica costs a refused connection, not a backoff; the try fails only when every
        endpoint did or refused."""
        left, failure = list(order), None
        while (slot := await self.router.acquire(left)) is not None:
            left.remove(slot.index)
            target = self._targets[slot.index]
            admission = await self._breaker.acquire(target)
            if not admission.allowed:
                await self.router.release(slot)
                continue
            try:
                return await self._open(slot, admission, request, completion)
            except (openai.APIError, httpx2.HTTPError) as exc:
                await self.router.release(slot)
                if _endpoint_failed(exc):
                    failures.append(exc)
                if not _endpoint_failed(exc) or not left:
                    raise
                failure = exc
                log.warning("llm.failover", target=target, error=f"{type(exc).__name__}: {exc}")
            except BaseException:
                await self.router.release(slot)
                raise
        if failure is not None:  # the endpoints after the failed one refused (breaker open)
            raise failure
        raise CircuitOpen(f"the circuit breaker of every LLM endpoint ({len(order)}) is open")

    async def _open(
        self, slot: Slot, admission: Admission, request: _Request, completion: Completion
    ) -> _Opened:
        """Open the stream on the slot's endpoint and read up to its first text (or its
        valid end); the outcome is recorded in that endpoint's breaker."""
        index = slot.index
        target = self._targets[index]
        try:
            stream = await self._clients[index].chat.completions.create(
                model=completion.model,
                messages=request.messages,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                stream=True,
                stream_options={"include_usage": True},
            )
            texts = read_reply(stream, completion)
            try:
                text = await anext(texts, None)
            except BaseException:
                try:
                    await texts.aclose()
                finally:
                    await stream.close()
                raise
        except (openai.APIError, httpx2.HTTPError) as exc:
            # A 4xx other than 429 is our bug (a request the endpoint rightly refused), not
            # the endpoint's health: it answered, so the breaker counts a success.
            await self._breaker.record(target, not _endpoint_failed(exc), probe=admission.probe)
            raise
        except BaseException:  # cancelled, or our own bug: no outcome to record
            await self._breaker.release(target, admission)
            raise
        await self._breaker.record(target, True, probe=admission.probe)
        return _Opened(stream, texts, text, slot)

    async def state(self) -> str:
        """For readiness: "degraded" while every endpoint's breaker is open, else "ok"."""
        opened = await self._breaker.open_targets(self._targets)
        return "degraded" if len(opened) == len(self._targets) else "ok"

    async def ping(self) -> bool:
        """True if some endpoint lists its models."""
        for client in self._clients:
            try:
                await client.with_options(timeout=2.0).models.list()
            except (openai.APIError, httpx2.HTTPError):
                continue
            return True
        return False

    async def aclose(self) -> None:
        """Close every endpoint's connection pool."""
        for client in self._clients:
            await client.close()


def _endpoint_failed(exc: BaseException) -> bool:
    """The endpoint is unwell: connection error, timeout, 5xx, 429 or a 200 that is no valid
    reply (retried, and counted against its breaker). Other 4xx are our bug; anything else
    is not the endpoint's."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(exc, openai.APIError | httpx2.HTTPError)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    log.warning(
        "llm.retry",
        attempt=state.attempt_number,
        error=f"{type(exc).__name__}: {exc}",
        backoff_s=round(state.next_action.sleep, 3) if state.next_action is not None else 0.0,
    )


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Vendor exceptions → ragq's upstream errors (the one place they are translated)."""
    try:
        yield
    except (openai.APITimeoutError, httpx2.TimeoutException) as exc:
        raise UpstreamTimeout(f"LLM timed out: {exc}") from exc
    except (openai.APIError, httpx2.HTTPError) as exc:
        raise UpstreamUnavailable(f"LLM failed: {type(exc).__name__}: {exc}") from exc
