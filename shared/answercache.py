"""The answer cache (temperature 0 only) and in-flight coalescing of identical requests.

Two keys, both scoped by tenant and the tenant's corpus version (bumped by every
publish and delete, so an ingest or delete makes every older entry unreachable;
they then expire by their TTL):

* the **answer**, under a digest of everything the LLM saw and how it was asked:
  model, the full messages (system prompt, the retrieved chunk ids, their document
  versions and texts, the question), `max_tokens`, `temperature` and the ungrounded-answer
  policy (an answer kept under `flag` is no answer under `extractive`). The worker
  writes it after a successful, non-degraded call and reads it before calling. It holds
  the answer as streamed (its citation markers already checked), its citations, model
  and `grounded`, which the worker computed from that text.
* a **pointer** from the request's digest (model, question, top_k, filters,
  generation parameters, retrieval settings, prompts, the ungrounded policy; and the
  conversation with the condensation prompt when there is one) to that answer digest, so
  the API can find an answer at submit without retrieving, and complete the job at once.
  Retrieval is deterministic for a given corpus version and settings, and so is
  condensation at temperature 0; an answer whose condensation fell back to the rule is
  stored without a pointer, so the next such request asks the LLM again.

While the first of several identical cacheable requests runs, the request digest
names it (the `inflight` key); later ones attach to it as followers instead of
queueing (see `shared.jobstore`) and get its answer when it completes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from redis.asyncio import Redis

from shared.config import Settings
from shared.prompting import ANSWER_INSTRUCTION, CONDENSE_PROMPT, SYSTEM_PROMPT
from shared.redis_keys import Keys
from shared.schemas.jobs import JobCreate


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def cacheable(request: JobCreate, settings: Settings) -> bool:
    """Only deterministic (temperature 0) requests are cached or coalesced."""
    return request.temperature == 0 and settings.answer_cache_ttl_s > 0


def request_digest(request: JobCreate, settings: Settings) -> str:
    """What decides the answer before retrieval runs (priority and metadata do not); a
    conversation counts only when there is one, so a plain request's digest is unchanged."""
    extra: dict[str, Any] = {}
    if request.conversation:  # two chats ending in one follow-up may mean two questions
        extra = {
            "conversation": [[t.role, t.content] for t in request.conversation],
            "condense": CONDENSE_PROMPT,
        }
    return _digest(
        {
            **extra,
            "model": request.model or settings.llm_model,
            "question": request.question,
            "top_k": request.top_k,
            "filters": request.filters,
            "max_tokens": request.max_tokens,
            "temperature": float(request.temperature),  # 0 and 0.0 are one request
            "system": SYSTEM_PROMPT,
            "instruction": ANSWER_INSTRUCTION,
            "ungrounded": settings.ungrounded_policy,
            "retrieval": [
                settings.collection_name,
                settings.retrieval_mode,
                settings.max_chunks_per_document,
                list(settings.rrf_weights),
                settings.rrf_k,
            ],
        }
    )


def prompt_digest(
    model: str,
    messages: list[dict[str, str]],
    chunk_versions: list[tuple[str, str]],
    *,
    max_tokens: int,
    temperature: float,
    ungrounded_policy: str,
) -> str:
    """What the LLM sees and how it is asked, and what is done with an answer that cites
    none of its passages: the answer's cache key."""
    return _digest(
        {
            "model": model,
            "messages": messages,
            "chunks": chunk_versions,
            "max_tokens": max_tokens,
            "temperature": float(temperature),
            "ungrounded": ungrounded_policy,
        }
    )


class AnswerCache:
    """Reads and writes cached answers; every write carries the TTL."""

    def __init__(self, redis: Redis, keys: Keys, *, ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_s = ttl_s

    async def corpus_version(self, tenant: str) -> str:
        """The tenant's current corpus version."""
        return str(await self._redis.get(self._keys.corpus(tenant)) or "0")

    async def lookup_request(self, tenant: str, digest: str) -> tuple[str, dict[str, Any] | None]:
        """(corpus version, cached answer or None) for a request digest.

        Three reads, each key named here: the corpus version, the request's pointer under
        it, the answer it points to (two round trips on a miss, three on a hit). Read in
        turn they answer what one atomic read would: the version read first was current
        during the call, and what is found under it is that version's cached answer (keys
        carry their version, so a publish or delete meanwhile only makes them unreachable
        to later lookups); an entry that expires in between is a miss.
        """
        corpus = await self.corpus_version(tenant)
        prompt = await self._redis.get(self._keys.answer_pointer(tenant, corpus, digest))
        if prompt is None:
            return corpus, None
        return corpus, await self.get(tenant, corpus, str(prompt))

    async def get(self, tenant: str, corpus: str, digest: str) -> dict[str, Any] | None:
        """A cached answer by its prompt digest."""
        raw = await self._redis.get(self._keys.answer(tenant, corpus, digest))
        return json.loads(raw) if raw else None

    async def put(
        self,
        tenant: str,
        corpus: str,
        *,
        prompt: str,
        request: str | None,
        answer: dict[str, Any],
    ) -> None:
        """Store an answer under its prompt digest and point the request digest at it
        (no pointer when `request` is None)."""
        if self._ttl_s <= 0:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.answer(tenant, corpus, prompt), json.dumps(answer), ex=self._ttl_s)
            if request is not None:
                pipe.set(self._keys.answer_pointer(tenant, corpus, request), prompt, ex=self._ttl_s)
            await pipe.execute()
