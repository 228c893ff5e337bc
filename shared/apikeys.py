"""API keys: issue, look up, list and revoke. Only a SHA-256 digest of a key is stored.

A key looks like `rq_<key id>_<secret>`; the key id is public (for listing and
revoking), the secret never leaves the `create` call.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from typing import cast

from redis.asyncio import Redis

from shared.redis_keys import Keys
from shared.schemas.common import rfc3339, utcnow


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What a key grants: its tenant and its limits (0 or None = no limit of its own)."""

    key_id: str
    tenant: str
    created_at: str
    rpm: int = 0
    max_concurrent: int = 0
    daily_budget_usd: float | None = None
    tier: str = "default"
    revoked: bool = False


def digest(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    """API keys in Redis."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def create(
        self,
        tenant: str,
        *,
        rpm: int = 0,
        max_concurrent: int = 0,
        daily_budget_usd: float | None = None,
        tier: str = "default",
    ) -> tuple[str, ApiKey]:
        """Issue a key for a tenant; returns the key (shown once) and its record."""
        key_id = secrets.token_hex(6)
        key = f"rq_{key_id}_{secrets.token_urlsafe(24)}"
        record = ApiKey(
            key_id=key_id,
            tenant=tenant,
            created_at=rfc3339(utcnow()),
            rpm=rpm,
            max_concurrent=max_concurrent,
            daily_budget_usd=daily_budget_usd,
            tier=tier,
        )
        hashed = digest(key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.api_key(hashed), json.dumps(asdict(record)))
            pipe.hset(self._keys.api_key_index, key_id, hashed)
            await pipe.execute()
        return key, record

    async def lookup(self, key: str) -> ApiKey | None:
        """The live record of a presented key, or None if unknown or revoked."""
        raw = await self._redis.get(self._keys.api_key(digest(key)))
        if raw is None:
            return None
        record = ApiKey(**json.loads(raw))
        return None if record.revoked else record

    async def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        index = cast(dict[str, str], await self._redis.hgetall(self._keys.api_key_index))  # type: ignore[misc]
        if not index:
            return []
        raws = await self._redis.mget([self._keys.api_key(d) for d in index.values()])
        found = [ApiKey(**json.loads(r)) for r in raws if r]
        return sorted(found, key=lambda k: (k.created_at, k.key_id))

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False if no such key."""
        hashed = await self._redis.hget(self._keys.api_key_index, key_id)  # type: ignore[misc]
        if hashed is None:
            return False
        raw = await self._redis.get(self._keys.api_key(hashed))
        if raw is None:
            return False
        record = {**json.loads(raw), "revoked": True}
        await self._redis.set(self._keys.api_key(hashed), json.dumps(record))
        return True
