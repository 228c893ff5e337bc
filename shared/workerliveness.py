"""Which workers live: a fresh beat in the workers hash (shared/heartbeat.py) whose Redis
connection is still open. Read by readiness (api/routes/health.py) and by a worker that
re-runs a job, to tell whether the job's last owner died (workers/jobs/attempts.py)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.heartbeat import WorkerHeartbeat

FRESH_BEATS = 3  # a beat older than this many heartbeat periods is a dead worker's


def parse_beat(raw: str) -> WorkerHeartbeat | None:
    """A stored beat; None for one that is not (a foreign or damaged entry is no worker)."""
    try:
        return WorkerHeartbeat.model_validate_json(raw)
    except ValidationError:
        return None


async def live_beats(
    redis: Redis, raw_beats: Iterable[str | None], heartbeat_s: float
) -> list[WorkerHeartbeat]:
    """The beats (HGET/HGETALL values of the workers hash) of workers that live: fresh, and
    still holding the Redis connection they beat on. A dead process's connection is gone at
    once, its last beat only ages (one CLIENT LIST ID round trip, O(workers); skipped where
    Redis refuses it, before 6.2 or by ACL, leaving freshness alone to decide)."""
    fresh_after = time.time() - FRESH_BEATS * heartbeat_s
    beats = [parse_beat(raw) for raw in raw_beats if raw is not None]
    fresh = [b for b in beats if b is not None and b.ts >= fresh_after]
    ids = [str(b.client_id) for b in fresh if b.client_id]
    if not ids:
        return fresh
    try:
        # redis-py's client_list(client_id=…) sends the ids as one argument, which Redis refuses
        listed = await redis.execute_command("CLIENT LIST", "ID", *ids)  # type: ignore[no-untyped-call]
    except ResponseError:
        return fresh
    # the name too: ids start again from 1 when Redis restarts, names stay the worker's
    alive = {(str(c.get("id")), c.get("name")) for c in listed}
    return [b for b in fresh if not b.client_id or (str(b.client_id), b.client_name) in alive]
