"""What `ragq dev` prints works as printed: its `ragq ask` line names a command that runs
(the venv's own `ragq` when it is not on PATH) and the URL of this instance."""

from __future__ import annotations

import shlex
import subprocess

from scripts.devstack import _ready_text


def test_the_printed_ask_line_runs_against_this_instance() -> None:
    text = _ready_text("http://127.0.0.1:8765", "rq_abc")
    line = next(ln for ln in text.splitlines() if ln.startswith("or: "))
    argv = shlex.split(line.removeprefix("or: "))
    command = argv[: argv.index("ask")]
    shown = subprocess.run([*command, "ask", "--help"], capture_output=True, text=True, check=False)
    assert argv[argv.index("--url") + 1] == "http://127.0.0.1:8765"
    assert argv[argv.index("--key") + 1] == "rq_abc"
    assert shown.returncode == 0
    assert "usage:" in shown.stdout
