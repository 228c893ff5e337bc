"""Each Redis script of the API-side stores (the rate limiter, the document records) run once
on the real Redis: what it returns and what it writes."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from shared.lua import source
from shared.redis_keys import Keys

pytestmark = pytest.mark.integration
WINDOW_US = 60_000_000
INDEXED_AT = "2025-01-02T03:04:05Z"


async def run(redis: Redis, name: str, keys: list[str], args: list[Any]) -> Any:
    """Run shared/lua/<name>.lua once."""
    return await redis.register_script(source(name))(keys=keys, args=args)


async def redis_us(redis: Redis) -> int:
    """Redis TIME in µs: the clock ratelimit_admit scores by."""
    seconds, micros = await redis.time()
    return int(seconds) * 1_000_000 + int(micros)


async def test_lua_ratelimit_admit(redis: Redis, keys: Keys) -> None:
    """With a limit of 2, two requests are logged (scored by Redis TIME) and the third is
    refused without being logged; each answer counts what remains and when a slot frees."""
    log = keys.ratelimit("key1")
    before = await redis_us(redis)
    answers = [await run(redis, "ratelimit_admit", [log], [2, WINDOW_US, m]) for m in "abc"]
    after = await redis_us(redis)
    entries = await redis.zrange(log, 0, -1, withscores=True)
    assert [(allowed, remaining) for allowed, remaining, _ in answers] == [(1, 1), (1, 0), (0, 0)]
    assert all(0 < reset <= WINDOW_US for _, _, reset in answers)
    assert [member for member, _ in entries] == ["a", "b"]
    assert all(before <= score <= after for _, score in entries)
    assert 0 < await redis.pttl(log) <= WINDOW_US // 1000


async def test_lua_documents_publish(redis: Redis, keys: Keys) -> None:
    """The pending version becomes the visible one, the tenant's corpus version moves, and
    the replaced version is returned; a version no longer pending changes nothing."""
    record, corpus = keys.document("acme", "doc_1"), keys.corpus("acme")
    await redis.hset(record, mapping={"version": "v1", "pending_version": "v2", "error": "x"})
    await redis.set(corpus, 5)
    args = [INDEXED_AT, 7, "indexed"]
    replaced = await run(redis, "documents_publish", [record, corpus], ["v2", *args])
    published = await redis.hgetall(record)
    superseded = await run(redis, "documents_publish", [record, corpus], ["v3", *args])
    assert (replaced, superseded) == ("v1", None)
    assert published == {
        "version": "v2",
        "pending_version": "",
        "status": "indexed",
        "indexed_at": INDEXED_AT,
        "chunks": "7",
        "error": "",
    }
    assert await redis.hgetall(record) == published
    assert await redis.get(corpus) == "6"


async def test_lua_documents_set_status(redis: Redis, keys: Keys) -> None:
    """The pending version's status and error are set, the pending version kept unless asked
    to drop it; once it is no longer pending nothing changes."""
    record = keys.document("acme", "doc_1")
    await redis.hset(record, mapping={"version": "v1", "pending_version": "v2"})
    indexing = await run(redis, "documents_set_status", [record], ["v2", "indexing", "", 0])
    kept = await redis.hgetall(record)
    failed = await run(redis, "documents_set_status", [record], ["v2", "failed", "boom", 1])
    dropped = await redis.hgetall(record)
    stale = await run(redis, "documents_set_status", [record], ["v2", "indexing", "", 0])
    assert (indexing, failed, stale) == (1, 1, 0)
    assert kept == {"version": "v1", "pending_version": "v2", "status": "indexing", "error": ""}
    assert dropped == {"version": "v1", "pending_version": "", "status": "failed", "error": "boom"}
    assert await redis.hgetall(record) == dropped
