"""The fault suite: real `ragq serve` / `ragq worker` processes, the test LLM, and a Redis
of the suite's own (its own port, AOF on) that tests shut down, kill and restart.

Every test records the figures it measured with `figures(section, **values)`; at the end
of the session they are printed (the terminal summary) and written to
`test-artifacts/faults/figures.json`, from which `scripts/faults_report.py` renders
docs/RELIABILITY.md. The suite runs as its own step of `scripts/test.sh`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from _pytest.terminal import TerminalReporter

from scripts.harness.processes import ROOT
from scripts.harness.redisproc import OwnRedis
from tests.e2e.conftest import Stack, stack_env

FIGURES_PATH = ROOT / "test-artifacts" / "faults" / "figures.json"
_FIGURES: dict[str, dict[str, Any]] = {}
Figures = Callable[..., None]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is a fault test (and starts real processes)."""
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def figures() -> Figures:
    """`figures("worker kills", jobs=200, kills=4, …)`: record what a test measured."""

    def record(section: str, **values: Any) -> None:
        _FIGURES.setdefault(section, {}).update(values)

    return record


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """Print the figures and write them where the report renderer reads them."""
    if not _FIGURES:
        return
    terminalreporter.section("fault suite figures")
    for section, values in _FIGURES.items():
        shown = ", ".join(f"{name}={value}" for name, value in values.items())
        terminalreporter.write_line(f"{section}: {shown}")
    FIGURES_PATH.parent.mkdir(parents=True, exist_ok=True)
    previous: dict[str, Any] = {}
    if FIGURES_PATH.exists():  # a run of part of the suite keeps the other sections
        previous = json.loads(FIGURES_PATH.read_text())
    FIGURES_PATH.write_text(json.dumps({**previous, **_FIGURES}, indent=2) + "\n")
    terminalreporter.write_line(f"figures written to {FIGURES_PATH.relative_to(ROOT)}")


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    """A running Redis of the test's own (AOF everysec), killed at the end."""
    server = OwnRedis(tmp_path / "redis")
    await server.start()
    try:
        yield server
    finally:
        if server.running:
            await server.kill()


@pytest.fixture
async def fault_stack(tmp_path: Path, own_redis: OwnRedis) -> AsyncIterator[Stack]:
    """A stack on the test's own Redis; the test starts the parts it needs (as the e2e
    `stack` fixture, whose settings it shares)."""
    stack = Stack(tmp_path, stack_env(tmp_path, own_redis.url, "ragqfault"))
    try:
        yield stack
    finally:
        await stack.stop()
