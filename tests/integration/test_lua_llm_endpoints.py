"""Each Redis script of the LLM endpoints (the circuit breaker and the router's in-flight
counts) and of the embedding migration's lock, run once on the real Redis: what it returns
and what it writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis

from shared.lua import source
from shared.redis_keys import Keys

pytestmark = pytest.mark.integration
TARGET = "http://llm-0.test:8000/v1"
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


async def redis_ms(redis: Redis) -> int:
    """Redis TIME in ms: the clock the scripts read."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def run(redis: Redis, name: str, keys: list[str], args: list[Any]) -> Any:
    """Run shared/lua/<name>.lua once."""
    return await redis.register_script(source(name))(keys=keys, args=args)


async def test_lua_breaker_acquire(redis: Redis, keys: Keys) -> None:
    """A breaker whose open period has passed grants the probe: its lease's end is written
    to the hash and returned; a closed breaker allows the call and writes nothing."""
    closed = await run(redis, "breaker_acquire", [keys.breaker("http://closed.test")], [1, 1])
    breaker = keys.breaker(TARGET)
    await redis.hset(breaker, "open_until", 1)
    before = await redis_ms(redis)
    verdict, lease = await run(redis, "breaker_acquire", [breaker], [MINUTE_MS, HOUR_MS])
    after = await redis_ms(redis)
    assert closed == ["allowed", 0]
    assert verdict == "probe"
    assert before + MINUTE_MS <= lease <= after + MINUTE_MS
    assert await redis.hgetall(breaker) == {"open_until": "1", "probe_until": str(lease)}
    assert 0 < await redis.pttl(breaker) <= HOUR_MS
    assert await redis.exists(keys.breaker("http://closed.test")) == 0


async def test_lua_breaker_record(redis: Redis, keys: Keys) -> None:
    """A failure that reaches `failures` opens the breaker for `open_ms` from Redis's now,
    drops the windows and resets the consecutive count."""
    breaker = keys.breaker(TARGET)
    names = [breaker, f"{breaker}:calls", f"{breaker}:fails"]
    args = {
        "ok": False,
        "probe": False,
        "member": "attempt-1",
        "failures": "1",
        "ratio": 0.5,
        "window_ms": str(MINUTE_MS),
        "min_calls": "10",
        "open_ms": str(HOUR_MS),
        "ttl_ms": str(2 * HOUR_MS),
    }
    before = await redis_ms(redis)
    answer = await run(redis, "breaker_record", names, [json.dumps(args)])
    after = await redis_ms(redis)
    state = await redis.hgetall(breaker)
    assert answer == ["opened", 1, 1, 1]
    assert state.keys() == {"open_until", "consecutive"}
    assert state["consecutive"] == "0"
    assert before + HOUR_MS <= int(state["open_until"]) <= after + HOUR_MS
    assert await redis.exists(*names[1:]) == 0
    assert HOUR_MS < await redis.pttl(breaker) <= 2 * HOUR_MS


async def test_lua_breaker_release(redis: Redis, keys: Keys) -> None:
    """Only the lease that holds the probe slot frees it."""
    breaker = keys.breaker(TARGET)
    await redis.hset(breaker, mapping={"open_until": 1, "probe_until": 12345})
    stale = await run(redis, "breaker_release", [breaker], [999])
    kept = await redis.hgetall(breaker)
    freed = await run(redis, "breaker_release", [breaker], [12345])
    assert (stale, freed) == (0, 1)
    assert kept == {"open_until": "1", "probe_until": "12345"}
    assert await redis.hgetall(breaker) == {"open_until": "1"}


async def test_lua_breaker_peek(redis: Redis, keys: Keys) -> None:
    """The ms each breaker stays open: an hour ahead, past (half-open) and closed; nothing
    is written."""
    hashes = [keys.breaker(f"http://llm-{i}.test") for i in range(3)]
    now = await redis_ms(redis)
    await redis.hset(hashes[0], "open_until", now + HOUR_MS)
    await redis.hset(hashes[1], "open_until", 1)
    remaining = await run(redis, "breaker_peek", hashes, [])
    assert 0 < remaining[0] <= HOUR_MS
    assert remaining[1:] == [0, 0]
    assert await redis.exists(hashes[2]) == 0


async def test_lua_routing_acquire(redis: Redis, keys: Keys) -> None:
    """The walk skips a candidate at the cap, counts the call on the next one with its
    lease's end, and forgets calls whose lease ran out."""
    sets = [f"{keys.breaker(f'http://llm-{i}.test')}:inflight" for i in range(2)]
    now = await redis_ms(redis)
    await redis.zadd(sets[0], {"live": now + HOUR_MS, "expired": 1})
    # load factor 1.0 in thousandths: cap = ceil(1.0 x (1 in flight + 1) / 2) = 1
    answer = await run(redis, "routing_acquire", sets, [1000, MINUTE_MS, "call-1", 1000])
    after = await redis_ms(redis)
    assert answer == [1, 1, 2, 1]
    assert await redis.zrange(sets[0], 0, -1) == ["live"]
    [(member, lease_end)] = await redis.zrange(sets[1], 0, -1, withscores=True)
    assert member == "call-1"
    assert now + MINUTE_MS <= lease_end <= after + MINUTE_MS
    assert 0 < await redis.pttl(sets[1]) <= MINUTE_MS


async def test_lua_lock_renew(redis: Redis, keys: Keys) -> None:
    """The holder's token extends the lock's TTL; another token, or no lock, changes nothing."""
    lock = keys.index_migration
    assert await run(redis, "lock_renew", [lock], ["me", 60_000]) == 0
    await redis.set(lock, "me", px=1_000)
    assert await run(redis, "lock_renew", [lock], ["other", 60_000]) == 0
    assert await redis.pttl(lock) <= 1_000
    assert await run(redis, "lock_renew", [lock], ["me", 60_000]) == 1
    assert 1_000 < await redis.pttl(lock) <= 60_000


async def test_lua_lock_release(redis: Redis, keys: Keys) -> None:
    """Only the holder's token deletes the lock."""
    lock = keys.index_migration
    await redis.set(lock, "me", px=60_000)
    assert await run(redis, "lock_release", [lock], ["other"]) == 0
    assert await redis.get(lock) == "me"
    assert await run(redis, "lock_release", [lock], ["me"]) == 1
    assert await redis.exists(lock) == 0
