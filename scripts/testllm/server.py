"""Serving the test LLM with uvicorn: in this event loop on a free port (`serve_testllm`,
for tests) or as the command line's process, which prints `READY http://HOST:PORT` once it
listens and exits 0 on SIGTERM/SIGINT. Every pending request ends when the server stops."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import AsyncIterator, Generator
from typing import Any

import uvicorn
from starlette.applications import Starlette

from scripts.testllm.answers import DEFAULT_MODEL
from scripts.testllm.app import create_app
from scripts.testllm.connection import with_transport
from scripts.testllm.faults import Behaviour
from scripts.testllm.state import Runtime


class _StubServer(uvicorn.Server):
    """uvicorn.Server that signals readiness, ends pending requests on shutdown and,
    if asked, handles SIGINT/SIGTERM itself (uvicorn re-raises them after shutdown,
    which would kill the process instead of exiting 0)."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime, *, signals: bool) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.signals = signals
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.runtime.closing.set()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if not self.signals:
            yield
            return
        loop = asyncio.get_running_loop()
        handled = (signal.SIGINT, signal.SIGTERM)
        for sig in handled:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be explicit: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says IPPROTO_TCP, and without it every keep-alive request waits
    # ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _make_server(app: Starlette, *, signals: bool, log_config: bool) -> _StubServer:
    extra: dict[str, Any] = {} if log_config else {"log_config": None}
    # the transport in the scope lets a fault cut the connection itself (connection.cut)
    config = uvicorn.Config(with_transport(app), log_level="warning", access_log=False, **extra)
    runtime: Runtime = app.state.testllm
    return _StubServer(config, runtime, signals=signals)


async def _start(server: _StubServer, sock: socket.socket) -> asyncio.Task[None]:
    """Start serving on `sock`; return the serve task once listening."""
    serve_task = asyncio.create_task(server.serve(sockets=[sock]))
    ready_task = asyncio.create_task(server.ready.wait())
    await asyncio.wait((serve_task, ready_task), return_when=asyncio.FIRST_COMPLETED)
    if not ready_task.done():
        ready_task.cancel()
        await serve_task  # re-raises a start-up error, if any
        raise RuntimeError("testllm server stopped before it was ready")
    return serve_task


@contextlib.asynccontextmanager
async def serve_testllm(
    behaviour: Behaviour | None = None, *, model: str = DEFAULT_MODEL, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """Serve the test LLM in this event loop on a free port; yield its base URL.

    The URL has no `/v1` suffix. Leaves logging configuration and signal handlers alone.
    """
    app = create_app(behaviour, model)
    server = _make_server(app, signals=False, log_config=False)
    with _bind(host, 0) as sock:
        serve_task = await _start(server, sock)
        try:
            yield _base_url(host, sock.getsockname()[1])
        finally:
            server.should_exit = True
            await serve_task


async def run(app: Starlette, host: str, port: int) -> int:
    """Serve `app` as this process's server until SIGTERM/SIGINT; returns the exit code."""
    server = _make_server(app, signals=True, log_config=True)
    try:
        sock = _bind(host, port)
    except OSError as exc:
        print(f"testllm: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    with sock:
        try:
            serve_task = await _start(server, sock)
        except RuntimeError as exc:
            print(f"testllm: {exc}", file=sys.stderr)
            return 1
        print(f"READY {_base_url(host, sock.getsockname()[1])}", flush=True)
        await serve_task
    return 0
