"""A circuit breaker per LLM endpoint whose state lives in Redis, shared by every worker process.

One Redis script before a call (`shared/lua/breaker_acquire.lua`: allowed, open, or the
single half-open probe) and one after (`breaker_record.lua`), each a single atomic round
trip. Time is Redis `TIME`, read inside the scripts, so the workers' clocks never matter
(Redis ≥ 5 replicates script effects, so reading the clock before writing is allowed).
Keys, under `Keys.breaker(target)`:

- the hash: `open_until` (ms; absent = closed), `probe_until` (ms, the probe's lease),
  `consecutive` (failures in a row);
- `:calls` / `:fails`: sorted sets of the attempts of the last window, scored by ms.

Every write re-arms a TTL longer than window + open period + probe lease, so an idle
endpoint's keys vanish by themselves and an expired breaker is simply closed.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Literal, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.config import Settings
from shared.logging import get_logger
from shared.lua import source
from shared.metrics import CIRCUIT_OPEN
from shared.redis_keys import Keys

log = get_logger("workers.breaker")
Verdict = Literal["allowed", "open", "probe"]


@dataclass(frozen=True, slots=True)
class Admission:
    """What `acquire` answered for one call."""

    verdict: Verdict
    ms: int = 0  # "open": ms until it may change; "probe": its lease's end (Redis ms)

    @property
    def allowed(self) -> bool:
        """The call may be made (closed, or this caller holds the probe)."""
        return self.verdict != "open"

    @property
    def probe(self) -> bool:
        """This call is the half-open probe: its outcome closes or re-opens the breaker."""
        return self.verdict == "probe"


class CircuitBreaker:
    """Per-target breakers (target = endpoint base URL) shared by every process on one Redis.

    Opens on `failures` consecutive failed calls, or when at least `min_calls` calls of the
    last `window_s` failed in a share ≥ `failure_ratio`. Open for `open_s`, then half-open:
    one caller across all processes gets the probe (for at most `probe_lease_s`); its
    success closes the breaker (counters reset), its failure re-opens it for `open_s`.
    Redis errors fail open (calls go through): the breaker must not add an outage.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        failures: int,
        failure_ratio: float,
        window_s: float,
        min_calls: int,
        open_s: float,
        probe_lease_s: float,
    ) -> None:
        self._keys = keys
        self._failures = failures
        self._ratio = failure_ratio
        self._window_ms = _ms(window_s)
        self._min_calls = min_calls
        self._open_ms = _ms(open_s)
        self._lease_ms = _ms(probe_lease_s)
        self._ttl_ms = self._window_ms + self._open_ms + self._lease_ms + 1000
        self._acquire = redis.register_script(source("breaker_acquire"))
        self._record = redis.register_script(source("breaker_record"))
        self._release = redis.register_script(source("breaker_release"))
        self._peek = redis.register_script(source("breaker_peek"))

    @classmethod
    def from_settings(cls, redis: Redis, keys: Keys, settings: Settings) -> CircuitBreaker:
        """The breaker configured by `breaker_*`; a probe's lease covers connecting plus
        the wait for its first token, the moment its outcome is recorded."""
        return cls(
            redis,
            keys,
            failures=settings.breaker_failures,
            failure_ratio=settings.breaker_failure_ratio,
            window_s=settings.breaker_window_s,
            min_calls=settings.breaker_min_calls,
            open_s=settings.breaker_open_s,
            probe_lease_s=2 * settings.llm_timeout_s,
        )

    def _names(self, target: str) -> list[str]:
        base = self._keys.breaker(target)
        return [base, f"{base}:calls", f"{base}:fails"]

    async def acquire(self, target: str) -> Admission:
        """May a call to `target` be made now? One round trip."""
        try:
            verdict, ms = await self._acquire(
                keys=self._names(target)[:1], args=[self._lease_ms, self._ttl_ms]
            )
        except RedisError as exc:
            log.warning("breaker.unavailable", target=target, error=str(exc))
            return Admission("allowed")
        admission = Admission(cast(Verdict, _text(verdict)), int(ms))
        CIRCUIT_OPEN.labels(target=target).set(0 if admission.verdict == "allowed" else 1)
        return admission

    async def record(self, target: str, ok: bool, *, probe: bool = False) -> None:
        """Count one call's outcome (`probe`: it was the half-open probe). One round trip."""
        # integers as strings: they reach the script exact (see breaker_record.lua)
        args = {
            "ok": ok,
            "probe": probe,
            "member": secrets.token_hex(8),  # a redis-py retry re-adds the same member
            "failures": str(self._failures),
            "ratio": self._ratio,
            "window_ms": str(self._window_ms),
            "min_calls": str(self._min_calls),
            "open_ms": str(self._open_ms),
            "ttl_ms": str(self._ttl_ms),
        }
        try:
            transition, consecutive, calls, fails = await self._record(
                keys=self._names(target), args=[json.dumps(args)]
            )
        except RedisError as exc:
            log.warning("breaker.unavailable", target=target, error=str(exc))
            return
        if _text(transition) == "opened":
            CIRCUIT_OPEN.labels(target=target).set(1)
            log.error(
                "breaker.opened",
                target=target,
                probe=probe,
                consecutive=int(consecutive),
                calls=int(calls),
                fails=int(fails),
                open_s=self._open_ms / 1000,
            )
        elif _text(transition) == "closed":
            CIRCUIT_OPEN.labels(target=target).set(0)
            log.info("breaker.closed", target=target)

    async def release(self, target: str, admission: Admission) -> None:
        """Give the probe back unused (its holder was cancelled before an outcome)."""
        if not admission.probe:
            return
        try:
            await self._release(keys=self._names(target)[:1], args=[admission.ms])
        except RedisError as exc:
            log.warning("breaker.unavailable", target=target, error=str(exc))

    async def open_targets(self, targets: list[str]) -> list[str]:
        """The targets whose breaker is open right now (half-open counts as not open)."""
        if not targets:
            return []
        try:
            remaining = await self._peek(keys=[self._names(t)[0] for t in targets])
        except RedisError as exc:
            log.warning("breaker.unavailable", error=str(exc))
            return []
        opened = [t for t, ms in zip(targets, remaining, strict=True) if int(ms) > 0]
        for target in targets:
            CIRCUIT_OPEN.labels(target=target).set(1 if target in opened else 0)
        return opened


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
