"""Daily spend budgets: estimate, reserve, settle, refund.

- **estimate** the worst case of a call (`estimate`), before anything is known but the request;
- **reserve** it against both budgets (`Budgets.reserve`; at submit, the submit script
  does it with `Budgets.terms`, and the job record holds it: `Budgets.held`);
- **settle** it with the real cost after the call (`Budgets.settle`), usually a refund;
- **refund** a submit-time reservation that no call used (`Budgets.refund`).

Spend is kept in integer nano-USD counters per UTC day and scope (the service, each
tenant); they expire two days later by themselves, so no job resets them. A
reservation checks and increments both scopes in one Lua script, so concurrent jobs
in any number of processes cannot overshoot a budget: the counter is the committed
spend (settled costs plus reservations still open). Settling adds the difference
between the real cost and the reservation, usually a refund.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from shared.jobrecord import JobRecord
from shared.logging import get_logger
from shared.lua import source
from shared.pricing import PriceTable
from shared.prompting import (
    CONDENSE_MAX_CHARS,
    CONDENSE_MAX_TOKENS,
    SYSTEM_PROMPT,
    answer_turn,
    condense_messages,
)
from shared.redis_keys import Keys
from shared.schemas.jobs import JobCreate

log = get_logger("shared.budget")

NANO = 1_000_000_000
SPEND_TTL_S = 2 * 86_400
# what a prompt adds around each cited chunk (number, title, section, separators), at most
CITATION_FRAMING_CHARS = 200


def estimate(prices: PriceTable, model: str, request: JobCreate, chunk_max_chars: int) -> float:
    """The most a request's LLM calls can cost (USD), known before retrieval: every one of
    its `top_k` chunks at the largest size, and `max_tokens` of completion; plus, when it
    carries a conversation, the condensation call (its whole prompt, `CONDENSE_MAX_TOKENS`
    of completion), with a condensed question of up to `CONDENSE_MAX_CHARS` in the answer's.
    The answer's prompt is the system prompt and the user turn around the chunks: its
    framing, the question and the instruction that follows it."""
    chunk_chars = request.top_k * (chunk_max_chars + CITATION_FRAMING_CHARS)
    prompt_chars = len(SYSTEM_PROMPT) + len(answer_turn("", request.question)) + chunk_chars
    if not request.conversation:
        return prices.worst_case(model, prompt_chars, request.max_tokens)
    condense = condense_messages(request.conversation, request.question)
    condense_chars = sum(len(m["content"]) for m in condense)
    prompt_chars += max(0, CONDENSE_MAX_CHARS - len(request.question))
    return prices.worst_case(model, prompt_chars, request.max_tokens) + prices.worst_case(
        model, condense_chars, CONDENSE_MAX_TOKENS
    )


def today() -> str:
    """The current UTC day, the budgets' period."""
    return datetime.now(UTC).date().isoformat()


def seconds_to_midnight() -> int:
    """Seconds until the UTC day (and every daily budget) rolls over."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return max(1, int((midnight - now).total_seconds()))


def nano(usd: float) -> int:
    """USD as integer nano-USD, rounded up (a reservation never undershoots)."""
    return math.ceil(round(usd * NANO, 3))


@dataclass(frozen=True, slots=True)
class Reservation:
    """An open reservation, settled exactly once."""

    day: str
    tenant: str
    amount_nano: int
    job_key: str | None = None  # made at submit: the job record that holds it


@dataclass(frozen=True, slots=True)
class Terms:
    """A submit-time reservation, as the submit script takes it (shared/admission.py)."""

    spend_keys: tuple[str, str]
    reserve_nano: int
    caps_nano: tuple[int, int]


class Budgets:
    """The service's and each tenant's daily budgets."""

    def __init__(self, redis: Redis, keys: Keys, *, service_cap_usd: float) -> None:
        self._redis = redis
        self._keys = keys
        self._service_cap = nano(service_cap_usd)
        self._reserve = redis.register_script(source("budget_reserve"))

    def counters(self, day: str, tenant: str) -> tuple[str, str]:
        """KEYS of the reserve fragment."""
        return self._keys.spend(day, "service"), self._keys.spend(day, f"tenant:{tenant}")

    def caps(self, tenant_cap_usd: float | None) -> tuple[int, int]:
        """Service and tenant caps in nano-USD (-1: the tenant has no budget of its own)."""
        return self._service_cap, -1 if tenant_cap_usd is None else nano(tenant_cap_usd)

    def terms(self, tenant: str, amount_usd: float, tenant_cap_usd: float | None) -> Terms:
        """The reservation a submit makes atomically with its admission."""
        return Terms(self.counters(today(), tenant), nano(amount_usd), self.caps(tenant_cap_usd))

    def held(self, record: JobRecord) -> Reservation | None:
        """The reservation made at submit that the job still holds, if any."""
        if record.reserved_nano <= 0:
            return None
        return Reservation(
            record.day, record.tenant, record.reserved_nano, self._keys.job(record.id)
        )

    async def refund(self, record: JobRecord | None) -> None:
        """Give back a submit-time reservation that no LLM call used (the job ended before
        its call, was answered from the cache, or was abandoned)."""
        held = self.held(record) if record is not None else None
        if held is not None:
            await self.settle(held, 0.0)

    async def reserve(
        self, tenant: str, amount_usd: float, tenant_cap_usd: float | None
    ) -> Reservation | str:
        """Reserve `amount_usd` against both budgets; the exhausted scope's name if no room."""
        day = today()
        amount = nano(amount_usd)
        outcome = await self._reserve(
            keys=list(self.counters(day, tenant)),
            args=[amount, *self.caps(tenant_cap_usd), SPEND_TTL_S],
        )
        if outcome != "ok":
            await self.exhausted(day, str(outcome), tenant)
            return str(outcome)
        return Reservation(day, tenant, amount)

    async def settle(self, reservation: Reservation, cost_usd: float) -> float:
        """Replace the reservation by the real cost (a refund when it was lower); the
        service's committed spend (USD) of the reservation's day after it.

        A reservation made at submit is recorded on the job (`job_key`); settling removes
        it there in the same transaction, so a re-run of the job cannot settle it twice.
        """
        job_key = reservation.job_key
        delta = nano(cost_usd) - reservation.amount_nano
        service, tenant = self.counters(reservation.day, reservation.tenant)
        async with self._redis.pipeline(transaction=True) as pipe:
            if delta:
                pipe.incrby(service, delta)
                pipe.incrby(tenant, delta)
            else:  # a read, not INCRBY 0, which would create a missing counter without a TTL
                pipe.get(service)
            if job_key is not None:
                pipe.hdel(job_key, "reserved_nano")
            results = await pipe.execute()
        return int(results[0] or 0) / NANO

    async def exhausted(self, day: str, scope: str, tenant: str) -> None:
        """Log `budget.exceeded` once per scope and day (across every process)."""
        name = "service" if scope == "service" else f"tenant:{tenant}"
        if await self._redis.set(self._keys.budget_alerted(day, name), 1, nx=True, ex=SPEND_TTL_S):
            log.error("budget.exceeded", scope=scope, day=day, tenant=tenant)

    async def spent(self, tenant: str, day: str | None = None) -> tuple[float, float]:
        """Committed spend in USD today: (service, tenant)."""
        raw = await self._redis.mget(self.counters(day or today(), tenant))
        service, mine = (int(v or 0) / NANO for v in raw)
        return service, mine
