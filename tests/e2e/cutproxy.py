"""A TCP proxy for e2e tests that drops event streams mid-answer: it forwards bytes both
ways between a client and the API, and on the first `cuts` connections that carry a
`GET …/events` request it closes the connection once `after` answer deltas of that
response have passed through, as a flaky network or a restarted load balancer would."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

CHUNK = 65536
DELTA = b"event: answer.delta"


@dataclass
class _Connection:
    armed: bool = False  # an events request went up: count its deltas
    response: bytearray = field(default_factory=bytearray)


class CuttingProxy:
    """Listens on 127.0.0.1 (a free port); `url` is its base URL once started, `cut` how
    many connections it has dropped so far."""

    def __init__(self, upstream: str, *, cuts: int, after: int = 2) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.cuts = cuts
        self.after = after
        self.cut = 0
        self.armed = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            api_r, api_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            self._tasks.discard(task)
            return
        conn = _Connection()
        pipes = [
            asyncio.create_task(self._up(client_r, api_w, conn)),
            asyncio.create_task(self._down(api_r, client_w, conn)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            for writer in (client_w, api_w):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            self._tasks.discard(task)

    async def _up(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Connection
    ) -> None:
        while data := await reader.read(CHUNK):
            line = data.split(b"\r\n", 1)[0]
            events = line.startswith(b"GET ") and b"/events" in line
            if events and not conn.armed and self.armed < self.cuts:
                conn.armed = True
                self.armed += 1
            writer.write(data)
            await writer.drain()

    async def _down(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Connection
    ) -> None:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
            if conn.armed:
                conn.response += data
                if conn.response.count(DELTA) >= self.after:
                    self.cut += 1
                    return  # the handler closes both sides: the stream ends mid-body
