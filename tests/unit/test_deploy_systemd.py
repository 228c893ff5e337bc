"""The systemd units and their env file, checked without systemd: ragq's units hardened and
reading /etc/ragq/ragq.env, workers outlasting their drain, vLLM caching prefixes, and
`systemd-analyze verify` accepting every unit where it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.config import Settings
from tests.unit.deployfiles import ENV_EXAMPLE, SYSTEMD, env_file, seconds, unit, values

RAGQ_UNITS = ("ragq-api.service", "ragq-worker@.service")
UNITS = ("vllm.service", *RAGQ_UNITS)


def test_vllm_unit_caches_prefixes_and_restarts() -> None:
    """vllm.service serves with prefix caching and a GPU memory share, restarts on failure,
    and runs as its own user."""
    sections = unit("vllm.service")
    (exec_start,) = values(sections, "Service", "ExecStart")
    share = re.search(r"--gpu-memory-utilization (\S+)", exec_start)
    assert "--enable-prefix-caching" in exec_start
    assert share is not None
    assert 0 < float(share.group(1)) <= 0.95
    assert values(sections, "Service", "Restart") == ["on-failure"]
    assert values(sections, "Service", "User") == ["vllm"]


@pytest.mark.parametrize("name", RAGQ_UNITS)
def test_ragq_units_are_hardened_and_read_the_env_file(name: str) -> None:
    """The ragq units read /etc/ragq/ragq.env, run as the `ragq` user, cannot gain
    privileges, and see a read-only system except their state directory."""
    sections = unit(name)
    service = dict(sections["Service"])
    writable = values(sections, "Service", "ReadWritePaths")
    assert values(sections, "Service", "EnvironmentFile") == ["/etc/ragq/ragq.env"]
    assert (service["User"], service["Group"]) == ("ragq", "ragq")
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["WorkingDirectory"] in writable
    assert service["Restart"] == "always"  # any exit: a ragq process never ends on purpose
    assert values(sections, "Install", "WantedBy") == ["multi-user.target"]


def test_worker_unit_sets_its_metrics_port_and_outlasts_the_drain() -> None:
    """ragq-worker@NN runs `ragq worker` with RAGQ_WORKER_METRICS_PORT=91NN, and systemd
    waits longer than the worker's drain (default and env example) before SIGKILL."""
    sections = unit("ragq-worker@.service")
    service = dict(sections["Service"])
    drain = max(
        Settings(_env_file=None).worker_drain_s,  # type: ignore[call-arg]
        float(env_file(ENV_EXAMPLE)["RAGQ_WORKER_DRAIN_S"]),
    )
    api = dict(unit("ragq-api.service")["Service"])
    assert "RAGQ_WORKER_METRICS_PORT=91%i" in values(sections, "Service", "Environment")
    assert service["ExecStart"].endswith("/ragq worker")
    assert api["ExecStart"].endswith("/ragq serve")
    assert seconds(service["TimeoutStopSec"]) > drain + 10


def test_env_example_leaves_the_metrics_port_to_each_worker() -> None:
    """ragq.env.example does not set RAGQ_WORKER_METRICS_PORT (an EnvironmentFile value
    would override every worker instance's own port) and points at a Qdrant server."""
    env = env_file(ENV_EXAMPLE)
    assert "RAGQ_WORKER_METRICS_PORT" not in env
    assert env["RAGQ_QDRANT_URL"].startswith("http")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze absent")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts every unit with no warning at all. The programs they
    start (/opt/ragq, /opt/vllm) are not installed here, so copies are verified with the
    executable swapped for /bin/true; everything else is the file as shipped."""
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        swapped = re.sub(r"^ExecStart=/opt/\S+", "ExecStart=/bin/true", text, flags=re.M)
        assert swapped != text
        (tmp_path / name).write_text(swapped)
    targets = ["vllm.service", "ragq-api.service", "ragq-worker@00.service"]
    done = subprocess.run(
        ["systemd-analyze", "verify", *targets],
        env={
            "SYSTEMD_UNIT_PATH": f"{tmp_path}:",
            "PATH": "/usr/bin:/bin",
            "SYSTEMD_LOG_COLOR": "0",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
