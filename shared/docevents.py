"""The per-tenant stream of document status changes, and waiting on it for many documents.

Every write that makes a document terminal for a waiter (a version indexed or failed, the
document deleted) adds the document's id to its tenant's stream in the same transaction
(`announce`). A wait reads the stream's last entry id together with the statuses, then
blocks with `XREAD` after it and re-reads only the waited-for documents an entry names: one
blocking connection per waiting request, as the jobs' long poll holds, and no sleep-poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

from redis.asyncio import Redis

from shared.redis_keys import Keys

PENDING = frozenset({"queued", "indexing"})  # every other status, and none, is terminal
EVENTS_MAX_LEN = 10_000  # entries kept per tenant (approximately): waiters read the newest
EVENTS_TTL_S = 86_400  # an idle tenant's stream goes away by itself
BLOCK_SLICE_S = 10.0  # one XREAD BLOCK never outlasts the blocking pool's socket timeout
READ_COUNT = 1000  # stream entries taken per wake-up


def announce(pipe: Any, keys: Keys, tenant: str, doc_id: str) -> None:
    """Queue, on `pipe`, the entry that wakes whoever waits for `doc_id`."""
    stream = keys.document_events(tenant)
    pipe.xadd(stream, {"id": doc_id}, maxlen=EVENTS_MAX_LEN, approximate=True)
    pipe.expire(stream, EVENTS_TTL_S)


async def _statuses(
    redis: Redis, keys: Keys, tenant: str, doc_ids: list[str], *, stream: bool
) -> tuple[str, list[str | None]]:
    """The stream's last entry id ('' unless `stream`; '0-0' if empty) and each status,
    read in one round trip: the id first, so an entry after it is a change not yet seen."""
    async with redis.pipeline(transaction=False) as pipe:
        if stream:
            pipe.xrevrange(keys.document_events(tenant), count=1)
        for doc_id in doc_ids:
            pipe.hget(keys.document(tenant, doc_id), "status")
        replies = await pipe.execute()
    if not stream:
        return "", cast(list[str | None], replies)
    last = cast(list[tuple[str, dict[str, str]]], replies[0])
    return (last[0][0] if last else "0-0"), cast(list[str | None], replies[1:])


async def wait_settled(
    redis: Redis,
    blocking: Redis,
    keys: Keys,
    tenant: str,
    doc_ids: Iterable[str],
    timeout_s: float,
) -> None:
    """Return once none of the documents is `queued` or `indexing` (a missing one counts as
    settled), or when `timeout_s` passed; `blocking` is the client for `XREAD BLOCK`.

    An XREAD slice that ends with no entry re-reads every pending status anyway, so a
    writer that does not announce (an older worker) delays a wait by a slice at most."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    ids = list(dict.fromkeys(doc_ids))
    last, statuses = await _statuses(redis, keys, tenant, ids, stream=True)
    pending = {d for d, s in zip(ids, statuses, strict=True) if s in PENDING}
    stream = keys.document_events(tenant)
    while pending and (left := deadline - loop.time()) > 0:
        block = max(1, int(min(left, BLOCK_SLICE_S) * 1000))
        reply = await blocking.xread({stream: last}, count=READ_COUNT, block=block)
        named: set[str] = set()
        for _name, entries in reply or []:
            for entry_id, fields in entries:
                last = entry_id
                named.add(fields.get("id", ""))
        recheck = sorted(pending & named if reply else pending)
        if recheck:
            _, now = await _statuses(redis, keys, tenant, recheck, stream=False)
            pending -= {d for d, s in zip(recheck, now, strict=True) if s not in PENDING}
