"""Usage: the caller's tenant's counters and spend for today (UTC)."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter

from api.deps import ApiKeyDep, ClientsDep
from shared.budget import today
from shared.metrics import BUDGET_SPEND
from shared.schemas.usage import UsagePublic

router = APIRouter(prefix="/v1", tags=["usage"])


@router.get("/usage", response_model=UsagePublic)
async def usage(clients: ClientsDep, key: ApiKeyDep) -> UsagePublic:
    """Today's requests, jobs, tokens, cache hits and committed spend of the caller's tenant.

    `budget_usd` is the key's daily budget for its tenant, else the service's.
    """
    day = today()
    raw = cast(
        dict[str, str],
        await clients.redis.hgetall(clients.keys.usage(day, key.tenant)),  # type: ignore[misc]
    )
    service, spend = await clients.budgets.spent(key.tenant, day)
    BUDGET_SPEND.labels(scope="service").set(service)
    budget = key.daily_budget_usd

    def count(name: str) -> int:
        return int(raw.get(name, 0))

    return UsagePublic(
        tenant=key.tenant,
        date=day,
        spend_usd=round(spend, 9),
        budget_usd=clients.settings.daily_budget_usd if budget is None else budget,
        requests=count("requests"),
        jobs={"completed": count("completed"), "failed": count("failed")},
        tokens={"prompt": count("prompt_tokens"), "completion": count("completion_tokens")},
        cache_hits=count("cache_hits"),
    )
