"""`ragq dev` starts and stops like a well-made CLI: Ctrl-C (SIGINT to its whole process
group, as a terminal sends it) stops every process it started and exits 130 with
`ragq dev: stopped`; a port already taken is refused before anything starts, exit 1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.harness import free_port, wait_until
from scripts.harness.processes import ProcessSet
from tests.e2e.conftest import Stack
from tests.e2e.test_cli_errors import RAGQ, run_ragq

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]
READY_LINE = b"Ctrl-C stops everything.\n"  # the last line `ragq dev` prints once ready
READY_TIMEOUT_S = 240.0  # the worker loads the embedding model; a loaded machine is slow
STOP_TIMEOUT_S = 90.0


def _dev_env(tmp_path: Path, redis_port: int, api_port: int) -> dict[str, str]:
    """`ragq dev` with nothing answering at its Redis URL (so it starts its own redis-server)
    and its data in this test's folder."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAGQ_")},
        "RAGQ_REDIS_URL": f"redis://127.0.0.1:{redis_port}/12",
        "RAGQ_PORT": str(api_port),
        "RAGQ_QDRANT_PATH": str(tmp_path / "qdrant"),
        "RAGQ_WORKER_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
    }


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state is [0], ppid [1],
    start time [19]), or None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _children(parent: int) -> Iterator[tuple[int, str, str]]:
    """(pid, start time, command line) of every process whose parent is `parent`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None or fields[1] != str(parent):
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            yield int(entry.name), fields[19], argv


def _running(pid: int, started: str) -> bool:
    """Whether that very process (not a later one with its pid) still runs."""
    fields = _stat(pid)
    return fields is not None and fields[19] == started and fields[0] != "Z"


def _answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(READY_TIMEOUT_S + 2 * STOP_TIMEOUT_S)
async def test_ctrl_c_stops_everything_it_started_and_exits_130(tmp_path: Path) -> None:
    """After SIGINT to its process group, `ragq dev` exits 130, its last line is `ragq dev:
    stopped`, nothing on stderr is a traceback, and its redis-server, API and worker are gone."""
    redis_port, api_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        RAGQ,
        "dev",
        "--corpus",
        str(tmp_path / "no-corpus"),
        env=_dev_env(tmp_path, redis_port, api_port),
        cwd=tmp_path,  # its dev key file goes here
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        process_group=0,  # a group of its own, like a shell's foreground job
    )
    assert process.stdout is not None
    assert process.stderr is not None
    errors = asyncio.create_task(process.stderr.read())  # the children write there too

    async def ready() -> None:
        assert process.stdout is not None
        while (line := await process.stdout.readline()) != READY_LINE:
            assert line, "ragq dev ended before it was ready"

    try:
        await asyncio.wait_for(ready(), READY_TIMEOUT_S)
        children = list(_children(process.pid))
        os.killpg(process.pid, signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    left = [argv for pid, started, argv in children if _running(pid, started)]
    stderr = (await asyncio.wait_for(errors, STOP_TIMEOUT_S)).decode()
    started = " | ".join(argv for _, _, argv in children)
    assert "redis-server" in started
    assert " worker" in started
    assert f"serve --port {api_port}" in started
    assert code == 130
    assert left == []
    assert not _answers(redis_port)
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == "ragq dev: stopped"


async def test_a_busy_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """A port someone else listens on: one line naming it and how to choose another, exit
    1, and no redis-server started (it would have been the first thing started)."""
    redis_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = await run_ragq("dev", env=_dev_env(tmp_path, redis_port, port), cwd=tmp_path)
    assert code == 1
    assert lines == [
        f"ragq dev: port {port} on 127.0.0.1 is in use: another program listens there (it "
        "does not answer like ragq): stop it, or choose another port with `ragq dev --port N` "
        "(or RAGQ_PORT=N). Nothing was started."
    ]
    assert not _answers(redis_port)
    assert not (tmp_path / ".ragq-dev-key").exists()


async def test_a_port_held_by_a_ragq_names_it(stack: Stack, tmp_path: Path) -> None:
    """When the port is a running ragq's, the line says so and gives its URL."""
    port = free_port()
    await stack.spawn("api", "serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}"

    async def listening() -> bool:
        return await asyncio.to_thread(_answers, port)

    await wait_until(listening, timeout_s=120, failure="ragq serve did not listen", processes=stack)
    redis_port = free_port()
    code, lines = await run_ragq(
        "dev", "--port", str(port), env=_dev_env(tmp_path, redis_port, 8000), cwd=tmp_path
    )
    assert code == 1
    assert lines == [
        f"ragq dev: port {port} on 127.0.0.1 is in use: another ragq is already running "
        f"there ({url}): use it, or stop it, or choose another port with `ragq dev --port N` "
        "(or RAGQ_PORT=N). Nothing was started."
    ]
    assert not _answers(redis_port)


async def test_stopping_children_that_are_already_gone_is_quiet(tmp_path: Path) -> None:
    """The harness stops children that died before it got to them (a signal that reached
    them first, a crash) without an error, and every child ends up stopped."""
    processes = ProcessSet(tmp_path, dict(os.environ))
    killed = await processes.start("killed", ["sleep", "60"])
    running = await processes.start("running", ["sleep", "60"])
    os.kill(killed.pid, signal.SIGKILL)  # gone before stop(), which has not seen it exit
    await processes.stop()
    codes = [c.process.returncode for c in (killed, running)]
    assert codes == [-signal.SIGKILL, -signal.SIGTERM]
