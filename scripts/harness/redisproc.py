"""A redis-server process of the caller's own, on a free port, with the append-only file on
(`appendfsync everysec`, Redis's default and compose.yaml's), so a restart keeps the queue
and the job records as a production Redis with AOF does. Fault tests shut it down, SIGKILL
it and start it again under a running stack."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from scripts.harness.processes import free_port
from scripts.harness.waiting import POLL_S

READY_TIMEOUT_S = 90.0


class OwnRedis:
    """One redis-server process; `url` points at its DB 0."""

    def __init__(self, folder: Path, *, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start it and return once it answers PING (and has loaded its data)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url)
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                # another process: no event to await, so poll until it answers (a Redis
                # still loading its AOF answers LOADING, a ResponseError)
                while True:
                    with contextlib.suppress(RedisConnectionError, ResponseError):
                        if await client.ping():
                            return
                    await asyncio.sleep(POLL_S)
        finally:
            await client.aclose()

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc is not None and self.proc.returncode is None

    async def shutdown(self) -> None:
        """`SHUTDOWN` (what `redis-cli shutdown` sends): it writes its data and exits."""
        client = Redis.from_url(self.url)
        with contextlib.suppress(RedisConnectionError):
            await client.shutdown()
        await client.aclose()
        assert self.proc is not None
        await self.proc.wait()

    async def kill(self) -> None:
        """SIGKILL: no goodbye to its clients, and at most the last second of writes lost."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
