"""The Dockerfile, checked without Docker: a layered, non-root, offline image whose build
context holds what it copies, and its health probe (`ragq-healthcheck`) run for real against
a local HTTP server."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.unit.deployfiles import ROOT, dockerfile


def healthcheck_script() -> str:
    """The ragq-healthcheck program the Dockerfile writes into the image."""
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"<<'EOF' /usr/local/bin/ragq-healthcheck\n(.*?)\nEOF\n", text, re.S)
    assert match is not None
    return match.group(1)


def test_dockerfile_builds_a_cached_non_root_offline_image() -> None:
    """Slim Python 3.11; dependencies installed from the runtime lock before the source is
    copied; a non-root user; the hub switched off; `ragq` entry point serving by default."""
    lines = dockerfile()
    index = {line: i for i, line in enumerate(lines)}
    first = next(i for i, line in enumerate(lines) if line.startswith("COPY requirements/"))
    deps = next(i for i, line in enumerate(lines) if "pip install --require-hashes -r" in line)
    source = next(i for i, line in enumerate(lines) if line.startswith("COPY shared"))
    users = [line for line in lines if line.startswith("USER ")]
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in index
    assert first < deps < source
    assert users == ["USER ragq"]
    assert index["USER ragq"] < index['ENTRYPOINT ["ragq"]']
    assert any("HF_HUB_OFFLINE=1" in line for line in lines)
    assert any(line.startswith("HEALTHCHECK ") and "ragq-healthcheck" in line for line in lines)
    assert lines[-2:] == ['ENTRYPOINT ["ragq"]', 'CMD ["serve", "--host", "0.0.0.0"]']


def test_the_image_holds_every_package_and_proves_the_weights_load() -> None:
    """The build copies api/, workers/, shared/ and scripts/ (home of the `ragq` CLI) before
    it installs the project, and a final RUN loads both embedded models as the image's user."""
    lines = dockerfile()
    install = next(
        i for i, line in enumerate(lines) if line.startswith("RUN pip install --no-deps")
    )
    copied = {line.split()[1] for line in lines[:install] if line.startswith("COPY ")}
    load = [
        i for i, line in enumerate(lines) if line.startswith("RUN python -c") and ".load(" in line
    ]
    assert {"api", "workers", "shared", "scripts"} <= copied
    assert len(load) == 1
    assert lines.index("USER ragq") < load[0]


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    """Every COPY source from the build context exists and .dockerignore does not drop it;
    the venv, git history and Qdrant data are ignored."""
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        part
        for line in dockerfile()
        if line.startswith("COPY ") and "--from=" not in line and "<<" not in line
        for part in line.split()[1:-1]
        if not part.startswith("--")
    ]
    assert sources
    assert [s for s in sources if not (ROOT / s).exists()] == []
    assert [s for s in sources if any(s == i or s.startswith(i + "/") for i in ignored)] == []
    assert {".git", ".venv", "data/qdrant", ".env"} <= set(ignored)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    """A local HTTP server: /healthz answers 200, anything else 503."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(("path", "code"), [("/healthz", 0), ("/broken", 1), (None, 1)])
def test_image_healthcheck_exits_by_the_health_url(
    health_server: str, tmp_path: Path, path: str | None, code: int
) -> None:
    """The image's probe exits 0 only when its URL answers 200: not on a 503, not when
    nothing listens."""
    script = tmp_path / "ragq-healthcheck"
    script.write_text(healthcheck_script())
    url = health_server + path if path else "http://127.0.0.1:9/healthz"
    done = subprocess.run(
        [sys.executable, str(script)],
        env={"RAGQ_HEALTH_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == code, done.stderr
