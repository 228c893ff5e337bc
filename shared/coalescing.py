"""Coalescing: identical cacheable requests share one LLM call.

The verbs, in the order a request meets them:
- **lead**: a submit that finds no running identical job queues its own and points the
  request's inflight pointer at it (in the submit script).
- **follow**: a submit that finds one attaches to it instead of queueing (same script);
  `leader` reads the pointer the script then checks.
- **seal**: when the leader's answer is ready (or it failed), it stops new followers
  attaching and takes the ones attached so far, to complete (or fail) them with it.
A cancelled leader's followers are queued as jobs of their own (shared/lua/job_cancel.lua).
"""

from __future__ import annotations

from redis.asyncio import Redis

from shared.jobrecord import JobRecord
from shared.lua import source
from shared.redis_keys import Keys
from shared.schemas.jobs import JobResult, Usage


class Coalescing:
    """The coalescing verbs over Redis."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._seal = redis.register_script(source("coalescing_seal"))

    async def leader(self, inflight_key: str | None) -> str:
        """The job an inflight pointer points at ("" when none)."""
        if inflight_key is None:
            return ""
        return str(await self._redis.get(inflight_key) or "")

    async def followers(self, job_id: str) -> list[str]:
        """The jobs attached to `job_id` so far (read, not sealed)."""
        members = await self._redis.smembers(self._keys.followers(job_id))  # type: ignore[misc]
        return sorted(str(m) for m in members)

    async def seal(self, record: JobRecord) -> list[str]:
        """Stop new requests attaching to this leader; the ones attached so far (none when
        the job leads nothing)."""
        if record.inflight is None:
            return []
        members = await self._seal(
            keys=[record.inflight, self._keys.followers(record.id)], args=[record.id]
        )
        return sorted(str(m) for m in members)


def for_follower(result: JobResult) -> JobResult:
    """A leader's result as its followers get it: answered without a call of their own."""
    return result.model_copy(
        update={
            "cached": True,
            "usage": Usage(),
            "cost_usd": 0.0,
            "timings_ms": dict.fromkeys(result.timings_ms, 0),
        }
    )
