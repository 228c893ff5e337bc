"""ragq's Redis scripts: one `.lua` file per script, read once when this module is imported.

Each script file opens with a header naming its KEYS and ARGV and what it returns. A
script that shares helper functions with others names them on a line of its header,

    -- requires: append enqueue

and gets `lib/append.lua` and `lib/enqueue.lua` (each a set of `local function`s) put in
front of its own text, in that order: that is the whole of the composition, no templating.
Every key a script touches comes in KEYS; none is built inside Lua. Scripts with more
than a handful of arguments take one JSON object in ARGV[1].

The files are read at import time (start-up), never on the event loop.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

from pydantic_core import to_json

_REQUIRES = re.compile(r"^-- requires:(?P<names>[ \w]+)$", re.MULTILINE)
_ROOT = files(__name__)


def _read(path: str) -> str:
    return (_ROOT / path).read_text(encoding="utf-8")


def _compose(name: str) -> str:
    text = _read(f"{name}.lua")
    found = _REQUIRES.search(text)
    libs = found["names"].split() if found else []
    return "".join(_read(f"lib/{lib}.lua") for lib in libs) + text


NAMES: tuple[str, ...] = tuple(
    sorted(p.name.removesuffix(".lua") for p in _ROOT.iterdir() if p.name.endswith(".lua"))
)
_SOURCES: dict[str, str] = {name: _compose(name) for name in NAMES}


def source(name: str) -> str:
    """The full text of script `name` (shared/lua/<name>.lua with the libraries it requires)."""
    try:
        return _SOURCES[name]
    except KeyError:
        raise KeyError(f"no Redis script shared/lua/{name}.lua") from None


def json_arg(value: Any) -> bytes:
    """A script's JSON argument (ARGV[1] of the scripts that take one object): compact
    UTF-8, encoded by pydantic-core (several times faster than `json.dumps` on the long
    strings events carry)."""
    return to_json(value)
