"""`ragq index status`: which embedding model serves each tenant, and whether a move to the
configured model (RAGQ_EMBEDDINGS_MODEL) is still under way. Reads Redis only.

Prints one JSON object: `configured`, `base` (the model of tenants with no record),
`tenants` (tenant → model), `pending` (tenants not yet on the configured model), `mover`
(the worker holding the migration lock, or null) and `done`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from shared.clients import make_redis
from shared.config import Settings
from shared.redis_keys import Keys
from workers.rag.indexes import tenant_records


async def status(settings: Settings) -> dict[str, Any]:
    """The index records of the deployment `settings` point at."""
    keys = Keys(settings.key_prefix)
    redis = make_redis(settings)
    try:
        base = await redis.get(keys.index_base)
        tenants = await tenant_records(redis, keys)
        mover = await redis.get(keys.index_migration)
    finally:
        await redis.aclose()
    configured = settings.embeddings_model
    pending = sorted(t for t, m in tenants.items() if m != configured)
    return {
        "configured": configured,
        "base": base,
        "tenants": dict(sorted(tenants.items())),
        "pending": pending,
        "mover": mover,
        "done": not pending and base in (None, configured),
    }


def run_status(settings: Settings) -> int:
    """Print the status; exit 0 when every tenant is on the configured model, else 1."""
    report = asyncio.run(status(settings))
    print(json.dumps(report, indent=2))
    return 0 if report["done"] else 1
