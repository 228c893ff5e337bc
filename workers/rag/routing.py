"""Which vLLM replica serves a call: rendezvous hashing of the prompt prefix, capped by load.

Each endpoint scores `hash(affinity, endpoint)`; the call walks the endpoints from the
highest score down, so one prompt prefix always lands on the same replica (vLLM's prefix
cache hits) and removing a replica moves only the prefixes it was first for. The walk
skips an endpoint whose in-flight calls would exceed `ceil(c * (in flight + 1) / n)` over
the `n` endpoints still in the running, `c` = `RAGQ_LLM_LOAD_FACTOR` (consistent hashing
with bounded loads, Mirrokni, Thorup & Zadimoghaddam 2018): a hot prefix spills to its
next replicas instead of piling onto one. With `c ≥ 1` some endpoint is always under the cap.

In-flight calls are counted in Redis, shared by every worker process, so the cap holds for
the whole fleet: one sorted set per endpoint (beside its breaker's keys) whose members are
the calls, scored by a lease's end. Choosing and counting is one script
(`shared/lua/routing_acquire.lua`, one round trip), ending a call one `ZREM`. A killed
worker's calls stop counting when their lease, the job timeout, runs out.
Redis errors fail open: the walk then ignores the cap.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.logging import get_logger
from shared.lua import source
from shared.redis_keys import Keys

log = get_logger("workers.routing")
_MILLI = 1000  # the load factor travels as an integer of thousandths: exact ceilings


def load_cap(in_flight: int, endpoints: int, factor: float) -> int:
    """The most calls one endpoint may hold once a new call joins `in_flight` others."""
    milli = round(factor * _MILLI)
    return -(-milli * (in_flight + 1) // (_MILLI * endpoints))


def rendezvous_order(affinity: str, targets: Sequence[str]) -> list[int]:
    """Endpoint indices by descending `hash(affinity, endpoint)`: the walk order of a call."""
    return sorted(range(len(targets)), key=lambda i: _score(affinity, targets[i]), reverse=True)


def _score(affinity: str, target: str) -> bytes:
    return hashlib.blake2b(f"{affinity}\0{target}".encode(), digest_size=8).digest()


@dataclass(frozen=True, slots=True)
class Slot:
    """One call's place on an endpoint, held until the call ends."""

    index: int  # into the router's targets
    member: str
    load: int  # the endpoint's calls in flight, this one included (0: not counted)
    total: int  # the candidates' calls in flight, this one included
    cap: int


class Router:
    """Chooses an endpoint per call and counts the calls in flight on each, fleet-wide."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        targets: Sequence[str],
        *,
        load_factor: float,
        lease_s: float,
    ) -> None:
        self.targets = list(targets)
        self._redis = redis
        self._names = [f"{keys.breaker(t)}:inflight" for t in self.targets]
        self._factor = round(load_factor * _MILLI)
        self._lease_ms = max(int(lease_s * 1000), 1000)
        self._acquire = redis.register_script(source("routing_acquire"))

    def order(self, affinity: str) -> list[int]:
        """The endpoints in the order a call with this prompt prefix tries them."""
        return rendezvous_order(affinity, self.targets)

    async def acquire(self, candidates: Sequence[int]) -> Slot | None:
        """The first of `candidates` (in their order) under the load cap, now counted as
        busier by one; None when there are no candidates. One round trip."""
        if not candidates:
            return None
        member = secrets.token_hex(8)
        try:
            position, load, total, cap = await self._acquire(
                keys=[self._names[i] for i in candidates],
                args=[self._factor, self._lease_ms, member, _MILLI],
            )
        except RedisError as exc:
            log.warning("router.unavailable", error=str(exc))
            return Slot(candidates[0], member, 0, 0, 0)
        return Slot(candidates[int(position)], member, int(load), int(total), int(cap))

    async def release(self, slot: Slot) -> None:
        """The call on `slot` ended (whatever its outcome)."""
        if not slot.load:
            return
        try:
            await self._redis.zrem(self._names[slot.index], slot.member)
        except RedisError as exc:
            log.warning("router.unavailable", error=str(exc))

    async def in_flight(self) -> list[int]:
        """Calls in flight per endpoint right now, across every worker (leases not expired)."""
        seconds, micros = await self._redis.time()
        now_ms = seconds * 1000 + micros // 1000
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in self._names:
                pipe.zcount(name, f"({now_ms}", "+inf")
            counts = await pipe.execute()
        return [int(c) for c in counts]
