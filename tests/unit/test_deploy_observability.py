"""deploy/prometheus and deploy/grafana as files, and as compose.yaml runs them: every alert
annotated and unit-tested, Prometheus discovering every API and worker replica on the ports
they listen on, Grafana provisioned with the dashboard and its Prometheus datasource."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.deployfiles import (
    GRAFANA,
    PROMETHEUS,
    ROOT,
    alerts,
    dashboard,
    environment,
    load_yaml,
    panels,
    seconds,
    services,
    settings_from,
)

ALERT_ANNOTATIONS = {"summary", "description", "runbook"}
SEVERITIES = {"critical", "warning"}


def test_every_alert_has_severity_and_annotations() -> None:
    """Each alert has a known severity and a non-empty summary, description and runbook
    whose first step is concrete (it starts with "First")."""
    found = alerts()
    missing = {
        name: sorted(
            {k for k in ALERT_ANNOTATIONS if not str(rule.get("annotations", {}).get(k, ""))}
        )
        for name, rule in found.items()
    }
    severities = {name: rule.get("labels", {}).get("severity") for name, rule in found.items()}
    vague = [n for n, r in found.items() if not r["annotations"]["runbook"].startswith("First")]
    assert len(found) >= 6
    assert {n: m for n, m in missing.items() if m} == {}
    assert {n: s for n, s in severities.items() if s not in SEVERITIES} == {}
    assert vague == []


def test_every_alert_is_unit_tested_firing_and_not() -> None:
    """alerts_test.yml checks every alert in a firing case and in a not-firing case."""
    tests = load_yaml(PROMETHEUS / "alerts_test.yml")["tests"]
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert sorted(set(alerts()) - firing) == []
    assert sorted(set(alerts()) - silent) == []


def test_prometheus_scrapes_every_api_and_worker_replica() -> None:
    """prometheus.yml discovers the compose services `api` and `worker` by DNS (every
    replica, whatever the scale) and loads alerts.yml."""
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    jobs = {c["job_name"]: c for c in config["scrape_configs"]}
    discovered = {
        name: [n for sd in jobs[name].get("dns_sd_configs", []) for n in sd["names"]]
        for name in ("ragq-api", "ragq-worker")
    }
    assert config["rule_files"] == ["alerts.yml"]
    assert discovered == {"ragq-api": ["api"], "ragq-worker": ["worker"]}


def test_grafana_provisioning_matches_the_dashboard() -> None:
    """Every dashboard query uses the provisioned Prometheus datasource (by uid), and the
    dashboard provider loads files from a folder."""
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "ragq.yml")["providers"]
    uids = {d["uid"] for d in datasources["datasources"] if d["type"] == "prometheus"}
    used = {
        t.get("datasource", p.get("datasource", {})).get("uid")
        for p in panels(dashboard()["panels"])
        for t in p.get("targets", [])
    }
    assert used == uids
    assert [(p["type"], bool(p["options"]["path"])) for p in providers] == [("file", True)]


def test_observability_files_match_compose() -> None:
    """compose.yaml runs what these files point at: the `api` and `worker` services on the
    ports Prometheus discovers them at, Prometheus's config directory, Grafana's
    provisioning and dashboard folders, and the datasource's Prometheus address."""
    compose_file = ROOT / "compose.yaml"
    if not compose_file.exists():
        pytest.skip("no compose.yaml yet")
    fleet = load_yaml(compose_file)["services"]
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    ports = {
        sd["names"][0]: sd["port"]
        for c in config["scrape_configs"]
        for sd in c.get("dns_sd_configs", [])
    }
    api_command = fleet["api"]["command"]
    worker_env = fleet["worker"]["environment"]
    mounts = {
        name: dict(v.split(":")[:2] for v in fleet[name]["volumes"] if v.startswith("./"))
        for name in ("prometheus", "grafana")
    }
    config_flag = next(f for f in fleet["prometheus"]["command"] if f.startswith("--config.file="))
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "ragq.yml")["providers"][0]
    datasource = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    assert ports == {
        "api": int(api_command[api_command.index("--port") + 1]),
        "worker": int(worker_env["RAGQ_WORKER_METRICS_PORT"]),
    }
    assert worker_env["RAGQ_HOST"] == "0.0.0.0"  # the exporter listens beyond loopback
    assert mounts["prometheus"]["./deploy/prometheus"] == str(
        Path(config_flag.split("=", 1)[1]).parent
    )
    assert mounts["grafana"] == {
        "./deploy/grafana/provisioning": "/etc/grafana/provisioning",
        "./deploy/grafana/dashboards": provider["options"]["path"],
    }
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert "prometheus" in fleet


def test_workers_expose_metrics_where_prometheus_scrapes(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prometheus (deploy/prometheus/prometheus.yml, mounted at /etc/prometheus) discovers
    the `api` and `worker` replicas on the ports they listen on, and a worker's metrics
    listener binds all interfaces; workers get longer than their drain to stop."""
    found = services(compose)
    worker = settings_from(environment(found["worker"]), monkeypatch)
    prometheus = found["prometheus"]
    config = load_yaml(PROMETHEUS / "prometheus.yml")
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
        for path in (GRAFANA / "provisioning" / "dashboards").glob("*.y*ml")
        for provider in load_yaml(path)["providers"]
    ]
    sources = [
        source
        for path in (GRAFANA / "provisioning" / "datasources").glob("*.y*ml")
        for source in load_yaml(path)["datasources"]
    ]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert providers != []
    assert {p["options"]["path"] for p in providers} == {mounts["./deploy/grafana/dashboards"]}
    assert [s["url"] for s in sources if s["type"] == "prometheus"] == ["http://prometheus:9090"]
    assert grafana["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
