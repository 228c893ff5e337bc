"""The idle cost of a stack: Redis commands per second while no request arrives, counted
with `INFO commandstats` and attributed to each process with `MONITOR`, and CPU time."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from scripts.bench.reportfile import read_text
from scripts.bench.stack import REDIS_URL, StackError


@dataclass
class IdleResult:
    window_s: float
    info_calls: int  # INFO commandstats difference minus our own first INFO
    by_process: dict[str, Counter[str]]
    other_clients: int
    cpu_s: dict[str, float]


def _redis_address() -> tuple[str, int]:
    parts = urlsplit(REDIS_URL)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def total_calls(commandstats: dict[str, Any]) -> int:
    """Sum of `calls` over every command in an `INFO commandstats` reply."""
    return sum(int(v["calls"]) for k, v in commandstats.items() if k.startswith("cmdstat_"))


def ports_of(children: dict[str, int]) -> dict[int, str]:
    """Local TCP port -> child name, from /proc (sockets the children hold open)."""
    inodes: dict[int, str] = {}
    for name, pid in children.items():
        fd_dir = Path(f"/proc/{pid}/fd")
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes[int(target[8:-1])] = name
    ports: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in read_text(Path(table)).splitlines()[1:]:
            cols = line.split()
            if len(cols) > 9 and int(cols[9]) in inodes:
                ports[int(cols[1].rsplit(":", 1)[1], 16)] = inodes[int(cols[9])]
    return ports


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    text = read_text(Path(f"/proc/{pid}/stat"))
    if not text:
        return math.nan
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


MONITOR_LINE = re.compile(r'^\+?(\d+\.\d+) \[(\d+) ([^\]]+)\] "([^"]*)"')


async def measure_idle(redis: Redis, children: dict[str, int], window_s: float) -> IdleResult:
    """Redis commands issued by an idle stack: INFO commandstats, attributed with MONITOR."""
    me = (await redis.client_info())["addr"]
    host, port = _redis_address()
    reader, writer = await asyncio.open_connection(host, port, limit=2**24)
    lines: list[str] = []
    try:
        writer.write(b"MONITOR\r\n")
        await writer.drain()
        if (await reader.readline()).strip() != b"+OK":
            raise StackError("Redis refused MONITOR")

        async def collect() -> None:
            while line := await reader.readline():
                lines.append(line.decode(errors="replace").rstrip("\r\n"))

        collector = asyncio.create_task(collect())
        cpu_before = {name: cpu_seconds(pid) for name, pid in children.items()}
        before = total_calls(await redis.info("commandstats"))
        t0 = time.perf_counter()
        await asyncio.sleep(window_s)
        after = total_calls(await redis.info("commandstats"))
        elapsed = time.perf_counter() - t0
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in children.items()}
        ports = ports_of(children)
        await asyncio.sleep(0.3)  # let MONITOR deliver the last lines
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    # Count what happened between our two INFO calls, as MONITOR saw it.
    by_process: dict[str, Counter[str]] = {}
    other = 0
    inside = False
    for line in lines:
        m = MONITOR_LINE.match(line)
        if not m:
            continue
        _, _db, addr, command = m.groups()
        command = command.upper()
        if addr == me:
            if command == "INFO":
                if inside:
                    break
                inside = True
            continue
        if not inside:
            continue
        client_port = int(addr.rsplit(":", 1)[1]) if ":" in addr else -1
        owner = "lua" if addr == "lua" else ports.get(client_port)
        if owner is None:
            other += 1
        else:
            by_process.setdefault(owner, Counter())[command] += 1
    # INFO counts a command once it has run, so our first INFO is in `after`, the second not.
    return IdleResult(elapsed, after - before - 1, by_process, other, cpu)


async def background_rate(redis: Redis, seconds: float = 2.0) -> float:
    """Commands/s other clients send to this Redis server before our stack runs."""
    before = total_calls(await redis.info("commandstats"))
    await asyncio.sleep(seconds)
    after = total_calls(await redis.info("commandstats"))
    return (after - before - 1) / seconds
