"""The Redis scripts are files (shared/lua/), each with its header, none building key
names, each run by a test; no Lua is left in Python strings."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from shared.lua import NAMES, source

ROOT = Path(__file__).resolve().parents[2]
LUA = ROOT / "shared" / "lua"


def _script_tests() -> set[str]:
    """The test functions of tests/integration/test_lua_*.py."""
    found: set[str] = set()
    for path in (ROOT / "tests" / "integration").glob("test_lua_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found |= {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
    return found


def test_there_are_scripts_to_check() -> None:
    assert len(NAMES) >= 10


@pytest.mark.parametrize("name", NAMES)
def test_each_script_is_run_by_a_test(name: str) -> None:
    """tests/integration/test_lua_*.py has `test_lua_<name>`, which runs it on Redis."""
    assert f"test_lua_{name}" in _script_tests()


@pytest.mark.parametrize("name", NAMES)
def test_each_script_opens_with_its_header(name: str) -> None:
    """Its name and purpose, its KEYS (or that it has none), its ARGV and what it returns."""
    head = (LUA / f"{name}.lua").read_text(encoding="utf-8").split("\n")
    comments = [line for line in head if line.startswith("--")]
    assert head[0].startswith(f"-- {name}: ")
    assert any("KEYS" in line for line in comments)
    assert any(line.startswith("-- Returns:") for line in comments)


@pytest.mark.parametrize("path", sorted(LUA.rglob("*.lua")), ids=lambda p: p.name)
def test_no_script_builds_a_key_name(path: Path) -> None:
    """Every key comes in KEYS: no prefix with ':'-separated parts glued on in Lua."""
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\.\.\s*'[^']*:", text)
    assert "ARGV[1] .. " not in text


def test_required_libraries_come_first() -> None:
    """A script that requires a library gets its functions before its own text."""
    assert source("job_submit").index("local function append") < source("job_submit").index(
        "cjson.decode"
    )


@pytest.mark.parametrize("package", ["api", "workers", "shared"])
def test_no_lua_in_python_strings(package: str) -> None:
    """No `.py` file of the service holds a Redis script."""
    for path in (ROOT / package).rglob("*.py"):
        assert "redis.call(" not in path.read_text(encoding="utf-8"), path
