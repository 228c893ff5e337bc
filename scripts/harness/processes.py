"""The processes a harness starts: each with its output in a log file, all stopped cleanly.

A `ProcessSet` starts every child in a session of its own, so Ctrl-C reaches only the
harness, which then stops the children in order; on Linux the kernel also SIGTERMs a child
whose harness dies without cleaning up. `stop()` sends SIGTERM to every child still
running, last started first, and SIGKILLs one that has not exited within the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 20.0
LOG_TAIL_CHARS = 3000

Output = Literal["log", "pipe", "devnull"]


class HarnessError(Exception):
    """A process did not start or become ready, or a set-up step against it failed."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when its parent dies.

    `prctl` is looked up here, in the parent: the child, forked from a process that may
    run threads, only calls it.
    """
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return hook


_PRE_EXEC = _parent_death_signal()


def _append(path: Path) -> IO[bytes]:
    return path.open("ab")


@dataclass
class Child:
    """One process the harness started."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path | None

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """Whether it has not exited (as far as the event loop knows)."""
        return self.process.returncode is None


def _signal(child: Child, signum: int) -> None:
    """Signal a child by its pid. Not `Process.send_signal`: subprocess polls the child
    first and, if it has just died, reaps it under asyncio's child watcher, which then
    reports exit code 255 instead of the signal that ended it. A child that is gone
    already (a zombie the watcher has not reaped yet) takes the signal harmlessly."""
    if child.alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)


class ProcessSet:
    """Starts named processes and always stops them, by their own pid.

    `logs` is the folder of the children's logs (NAME.log, stdout and stderr together);
    None lets them write to the harness's own terminal. `env` is the environment of every
    child started from now on: change it between starts to start one differently. They run
    in `cwd`, the repository root unless told otherwise (None: the harness's own).
    """

    def __init__(
        self,
        logs: Path | None,
        env: dict[str, str],
        *,
        cwd: Path | None = ROOT,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.logs = logs
        self.env = env
        self.cwd = cwd
        self.stop_timeout_s = stop_timeout_s
        self.say = say or (lambda message: None)
        self.children: list[Child] = []
        self.procs: dict[str, asyncio.subprocess.Process] = {}  # by name, the latest
        self._pumps: list[asyncio.Task[None]] = []

    async def start(self, name: str, argv: Sequence[str], *, stdout: Output = "log") -> Child:
        """Start `argv` in `cwd`; its stdout goes to the log, a pipe or nowhere."""
        log_path = None if self.logs is None else self.logs / f"{name}.log"
        log = None if log_path is None else await asyncio.to_thread(_append, log_path)
        out: int | IO[bytes] | None = {
            "log": log,
            "pipe": asyncio.subprocess.PIPE,
            "devnull": asyncio.subprocess.DEVNULL,
        }[stdout]
        spawn = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *argv,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
                preexec_fn=_PRE_EXEC,
            )
        )
        try:
            # shielded: a cancellation (Ctrl-C in `ragq dev`) that lands while the child is
            # being spawned must not lose it; it is recorded below, so that stop() ends it
            process = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                self._record(name, await spawn, log_path)
            raise
        except OSError as exc:
            raise HarnessError(f"cannot start {name} ({argv[0]}): {exc}") from exc
        finally:
            if log is not None:
                log.close()  # the child holds its own descriptor
        return self._record(name, process, log_path)

    def _record(
        self, name: str, process: asyncio.subprocess.Process, log_path: Path | None
    ) -> Child:
        child = Child(name, process, log_path)
        self.children.append(child)
        self.procs[name] = process
        return child

    def pump(self, child: Child) -> None:
        """Keep draining a child's piped stdout into its log, so it never blocks on it."""
        stream = child.process.stdout
        assert stream is not None
        log = None if child.log_path is None else _append(child.log_path)

        async def drain() -> None:
            try:
                while line := await stream.readline():
                    if log is not None:
                        log.write(line)
                        log.flush()
            finally:
                if log is not None:
                    log.close()

        self._pumps.append(asyncio.create_task(drain()))

    def check_alive(self) -> None:
        """Raise if a child has exited (during start-up, that is a failure)."""
        for child in self.children:
            if not child.alive:
                raise HarnessError(
                    f"{child.name} exited with {child.process.returncode} during start-up"
                )

    async def stop(self) -> None:
        """SIGTERM every child still running (last started first), SIGKILL any that is not
        gone after `stop_timeout_s`. Safe to call more than once."""
        for child in reversed(self.children):
            if not child.alive:
                continue
            _signal(child, signal.SIGTERM)
            try:
                await asyncio.wait_for(child.process.wait(), self.stop_timeout_s)
            except TimeoutError:
                self.say(f"{child.name} (pid {child.pid}) ignored SIGTERM; killing it")
                _signal(child, signal.SIGKILL)
                await child.process.wait()
        pumps, self._pumps = self._pumps, []
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)

    def kill_leftovers(self) -> None:
        """Last resort when the event loop is gone: SIGKILL children that may still run."""
        for child in self.children:
            if child.alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(child.pid, signal.SIGKILL)

    def log_tails(self) -> str:
        """The end of every log, for failure messages."""
        if self.logs is None:
            return ""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-LOG_TAIL_CHARS:]}"
            for p in sorted(self.logs.glob("*.log"))
        )
