"""Per-key request rate limits, exact across every API process: a sliding-window log in Redis.

Each key has a sorted set of the requests it was admitted in the last 60 s, scored by
Redis `TIME` (so the API hosts' clocks do not matter). One Lua script,
shared/lua/ratelimit_admit.lua, trims the entries that left the window, admits the request
if fewer than N remain (logging it under a member unique to the request, then PEXPIRE-ing
the set to the window), and answers allowed, remaining and the time until the next slot
frees: one round trip per request (`register_script` runs EVALSHA; only a server that lost
the script costs a reload).

Why a log rather than counters: a fixed window admits up to 2N requests around a window
boundary and approximations (sliding counters) are not exact, while a log is exact for
"N per rolling minute" at N entries per key, which is small at per-minute rates. The
`limits` package's moving window is the same log but needs a second call for the window's
state, which the RateLimit headers need on every response. Refusals are not logged, so a
client hammering a full window does not push its own reset further out; a retried script
call (redis-py retries on connection blips) re-adds the same member, so it counts once.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.lua import source
from shared.redis_keys import Keys

WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """The outcome of one request against its key's limit."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until a slot frees (the oldest logged request leaves); ≥ 1

    def headers(self) -> dict[str, str]:
        """The RateLimit fields of the response."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }


class RateLimiter:
    """At most N requests per rolling minute per API key, shared by every process on one Redis."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._keys = keys
        self._admit = redis.register_script(source("ratelimit_admit"))

    async def hit(self, key_id: str, limit: int) -> RateLimitDecision:
        """Count a request of `key_id` against `limit` per minute (> 0) if there is room."""
        allowed, remaining, reset_us = await self._admit(
            keys=[self._keys.ratelimit(key_id)],
            args=[limit, WINDOW_S * 1_000_000, secrets.token_hex(8)],
        )
        return RateLimitDecision(
            allowed=bool(allowed),
            limit=limit,
            remaining=int(remaining),
            reset_s=max(math.ceil(int(reset_us) / 1_000_000), 1),
        )
