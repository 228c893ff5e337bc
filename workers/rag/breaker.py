"""A circuit breaker per LLM endpoint whose state lives in Redis, shared by every worker process.

One Lua script before a call (`acquire`: allowed, open, or the single half-open probe) and
one after (`record`), each a single atomic round trip. Time is Redis `TIME`, read inside
the scripts, so the workers' clocks never matter (Redis ≥ 5 replicates script effects, so
reading the clock before writing is allowed). Keys, under `Keys.breaker(target)`:

- the hash: `open_until` (ms; absent = closed), `probe_until` (ms, the probe's lease),
  `consecutive` (failures in a row);
- `:calls` / `:fails`: sorted sets of the attempts of the last window, scored by ms.

Every write re-arms a TTL longer than window + open period + probe lease, so an idle
endpoint's keys vanish by themselves and an expired breaker is simply closed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.config import Settings
from shared.logging import get_logger
from shared.metrics import CIRCUIT_OPEN
from shared.redis_keys import Keys

log = get_logger("workers.breaker")
Verdict = Literal["allowed", "open", "probe"]

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1]: the hash. ARGV: probe lease (ms), TTL (ms).
# Returns {verdict, ms}: "allowed"; "open" and the ms until it may change; "probe" and
# the lease's end, which names this probe for `release`.
_ACQUIRE = (
    _NOW
    + """
local state = redis.call('HMGET', KEYS[1], 'open_until', 'probe_until')
local open_until = tonumber(state[1] or '0')
if open_until == 0 then return {'allowed', 0} end
if now < open_until then return {'open', open_until - now} end
local probe_until = tonumber(state[2] or '0')
if now < probe_until then return {'open', probe_until - now} end
local lease = now + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'probe_until', lease)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'probe', lease}
"""
)

# KEYS: the hash, :calls, :fails. ARGV: ok (0|1), probe (0|1), a member unique to the
# attempt, failures, failure ratio, window (ms), min calls, open period (ms), TTL (ms).
# Returns {transition ("opened", "closed" or ""), consecutive failures, calls, fails}.
_RECORD = (
    _NOW
    + """
local ok, probe = ARGV[1] == '1', ARGV[2] == '1'
local open_ms, ttl = tonumber(ARGV[8]), ARGV[9]
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until > 0 then
  if probe and now >= open_until then
    if ok then
      redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
      return {'closed', 0, 0, 0}
    end
    redis.call('HSET', KEYS[1], 'open_until', now + open_ms)
    redis.call('HDEL', KEYS[1], 'probe_until')
    redis.call('PEXPIRE', KEYS[1], ttl)
    return {'opened', 0, 0, 0}
  end
  -- a call admitted before the breaker opened: its outcome no longer matters
  return {'', 0, 0, 0}
end
local since = now - tonumber(ARGV[6])
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', since)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', since)
local consecutive = 0
if ok then
  redis.call('HSET', KEYS[1], 'consecutive', 0)
else
  redis.call('ZADD', KEYS[3], now, ARGV[3])
  consecutive = redis.call('HINCRBY', KEYS[1], 'consecutive', 1)
end
local calls = redis.call('ZCARD', KEYS[2])
local fails = redis.call('ZCARD', KEYS[3])
if consecutive >= tonumber(ARGV[4])
    or (calls >= tonumber(ARGV[7]) and fails / calls >= tonumber(ARGV[5])) then
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'open_until', now + open_ms, 'consecutive', 0)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {'opened', consecutive, calls, fails}
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
return {'', consecutive, calls, fails}
"""
)

# KEYS[1]: the hash. ARGV[1]: the lease `acquire` granted. Frees the probe slot when
# its holder ends without an outcome (cancelled), unless a newer probe holds it.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'probe_until') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'probe_until')
  return 1
end
return 0
"""

# KEYS: hashes. Returns the ms each breaker stays open (0: closed or half-open).
_PEEK = (
    _NOW
    + """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = math.max(tonumber(redis.call('HGET', key, 'open_until') or '0') - now, 0)
end
return out
"""
)


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
        self._acquire = redis.register_script(_ACQUIRE)
        self._record = redis.register_script(_RECORD)
        self._release = redis.register_script(_RELEASE)
        self._peek = redis.register_script(_PEEK)

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
        args: list[str | int] = [
            int(ok),
            int(probe),
            secrets.token_hex(8),  # a redis-py retry of the script re-adds the same member
            self._failures,
            repr(self._ratio),
            self._window_ms,
            self._min_calls,
            self._open_ms,
            self._ttl_ms,
        ]
        try:
            transition, consecutive, calls, fails = await self._record(
                keys=self._names(target), args=args
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
