"""The one LLM wrapper: AsyncOpenAI against the configured OpenAI-compatible endpoints.

The SDK's own retries are off (retries belong to one layer, ours, in #4); vendor
exceptions are translated here into `UpstreamTimeout` / `UpstreamUnavailable`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam

from shared.config import Settings
from shared.errors import UpstreamTimeout, UpstreamUnavailable
from shared.logging import get_logger
from shared.schemas.jobs import Usage

log = get_logger("workers.llm")


@dataclass(slots=True)
class Completion:
    """What one streamed call produced so far."""

    model: str
    usage: Usage = field(default_factory=Usage)
    first_token_s: float | None = None


class LLMClient:
    """Streams chat completions from one of several vLLM replicas, picked by prompt prefix."""

    def __init__(self, settings: Settings) -> None:
        timeout = httpx2.Timeout(
            connect=min(5.0, settings.llm_timeout_s),
            read=settings.llm_timeout_s,  # the longest silence between two streamed chunks
            write=settings.llm_timeout_s,
            pool=settings.llm_timeout_s,
        )
        self._clients = [
            openai.AsyncOpenAI(
                base_url=url,
                api_key=settings.llm_api_key.get_secret_value(),
                timeout=timeout,
                max_retries=0,
            )
            for url in settings.llm_base_urls
        ]
        if not self._clients:
            raise ValueError("no LLM endpoint configured")
        self.default_model = settings.llm_model

    def _pick(self, affinity: str) -> openai.AsyncOpenAI:
        """Same prompt prefix → same replica, so vLLM's prefix cache gets hits."""
        index = int(hashlib.sha1(affinity.encode()).hexdigest(), 16) % len(self._clients)
        return self._clients[index]

    async def stream(
        self,
        messages: list[dict[str, str]],
        *,
        completion: Completion,
        max_tokens: int,
        temperature: float,
        affinity: str,
    ) -> AsyncIterator[str]:
        """Yield content deltas; `completion.usage` is filled in from the final chunk."""
        client = self._pick(affinity)
        started = time.perf_counter()
        try:
            stream = await client.chat.completions.create(
                model=completion.model,
                messages=cast(list[ChatCompletionMessageParam], messages),
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
                stream_options={"include_usage": True},
            )
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        completion.usage = Usage(
                            prompt_tokens=chunk.usage.prompt_tokens,
                            completion_tokens=chunk.usage.completion_tokens,
                            total_tokens=chunk.usage.total_tokens,
                        )
                    for choice in chunk.choices:
                        text = choice.delta.content
                        if text:
                            if completion.first_token_s is None:
                                completion.first_token_s = time.perf_counter() - started
                            yield text
        except openai.APITimeoutError as exc:
            raise UpstreamTimeout(f"LLM timed out: {exc}") from exc
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise UpstreamUnavailable(f"LLM failed: {type(exc).__name__}: {exc}") from exc

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
