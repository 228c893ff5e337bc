"""The nginx edge: its job cache keyed by credential, SSE streamed unbuffered, rate-limit
headers passed through, mounted by compose.yaml in front of the API replicas, and accepted by
`nginx -t` where nginx is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.deployfiles import NGINX, location_block, nginx_directives, services


def test_edge_serves_the_nginx_config_on_the_api_replicas(compose: dict[str, Any]) -> None:
    """The edge mounts ragq.conf and the compose upstream (the `api` service on its port),
    and its cache directory is a tmpfs at the path of ragq.conf's proxy_cache_path."""
    edge = services(compose)["edge"]
    conf = (NGINX / "ragq.conf").read_text()
    cache_path = re.search(r"proxy_cache_path (\S+)", conf)
    upstream = nginx_directives((NGINX / "upstream-compose.conf").read_text())
    assert cache_path is not None
    assert "./deploy/nginx/ragq.conf:/etc/nginx/conf.d/default.conf:ro" in edge["volumes"]
    assert (
        "./deploy/nginx/upstream-compose.conf:/etc/nginx/conf.d/upstream.conf:ro"
        in (edge["volumes"])
    )
    assert [t.split(":")[0] for t in edge["tmpfs"]] == [cache_path.group(1)]
    assert "server api:8000 max_fails=3 fail_timeout=10s" in upstream
    assert edge["ports"] == ["8000:80"]


def test_edge_cache_key_holds_the_credential() -> None:
    """The job cache is keyed by URL and by both credential headers, stores only responses
    the API marked immutable, and revalidates with the ETag."""
    conf = (NGINX / "ragq.conf").read_text()
    block = nginx_directives(location_block(conf, r"~ ^/v1/jobs/[^/]+$"))
    (key,) = [d for d in block if d.startswith("proxy_cache_key ")]
    assert "$request_uri" in key
    assert "$http_authorization" in key
    assert "$http_x_api_key" in key
    assert "proxy_cache ragq_jobs" in block
    assert "proxy_no_cache $ragq_not_terminal" in block
    assert "proxy_cache_revalidate on" in block
    assert '"~*immutable" ""' in nginx_directives(conf)


def test_edge_streams_sse_unbuffered_and_passes_headers() -> None:
    """SSE routes are unbuffered over HTTP/1.1 with long read timeouts; X-Request-ID is sent
    upstream; Retry-After and RateLimit-* are never dropped from an upstream answer."""
    conf = (NGINX / "ragq.conf").read_text()
    server = nginx_directives(conf)
    for pattern in (r"~ ^/v1/jobs/[^/]+/events$", "= /v1/rag"):
        block = nginx_directives(location_block(conf, pattern))
        timeout = next(d for d in block if d.startswith("proxy_read_timeout "))
        assert "proxy_buffering off" in block
        assert timeout == "proxy_read_timeout 1h"
    hidden = [d.split()[1] for d in server if d.startswith("proxy_hide_header ")]
    readded = {d.split()[1]: d.split()[2] for d in server if d.startswith("add_header ")}
    assert "proxy_http_version 1.1" in server
    assert "proxy_set_header X-Request-ID $ragq_request_id" in server
    assert "Retry-After" not in hidden
    for name in (h for h in hidden if h.startswith("RateLimit-")):
        assert readded[name] == "$ragq_" + name.lower().replace("-", "_")


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx absent (apt-get install nginx)")
def test_nginx_accepts_the_edge_config(tmp_path: Path) -> None:
    """`nginx -t` accepts ragq.conf with the host upstream. The cache and log paths are moved
    into a temporary folder so the test writes nothing outside it."""
    conf = (NGINX / "ragq.conf").read_text()
    conf = conf.replace("/var/cache/nginx/ragq", str(tmp_path / "cache"))
    conf = conf.replace("/var/log/nginx/access.log", str(tmp_path / "access.log"))
    (tmp_path / "ragq.conf").write_text(conf)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  include {tmp_path}/ragq.conf;\n  include {NGINX}/upstream-host.conf;\n}}\n"
    )
    done = subprocess.run(
        [
            "nginx",
            "-t",
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
            "-c",
            str(tmp_path / "nginx.conf"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
