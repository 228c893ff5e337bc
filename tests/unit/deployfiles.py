"""Readers of the deployment files for the test_deploy_* modules: their paths, compose.yaml's
services and environments, env files, systemd units, nginx directives, the Dockerfile's
instructions, and deploy/prometheus's rules and deploy/grafana's dashboard."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
NGINX = DEPLOY / "nginx"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
ENV_EXAMPLE = DEPLOY / "ragq.env.example"
API_MD = ROOT / "docs" / "API.md"


def load_yaml(path: Path) -> Any:
    """A YAML file as plain data (anchors and merge keys resolved)."""
    return yaml.safe_load(path.read_text())


# --- compose.yaml and environments ------------------------------------------------------


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


def seconds(text: str) -> float:
    """A systemd or Compose time span such as `45`, `45s`, `15min`."""
    match = re.fullmatch(r"(\d+)\s*(s|sec|min|m)?", text)
    assert match is not None, text
    return int(match.group(1)) * (60 if match.group(2) in {"min", "m"} else 1)


# --- systemd units ----------------------------------------------------------------------


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


# --- nginx ------------------------------------------------------------------------------


def nginx_directives(text: str) -> list[str]:
    """The directives of an nginx file, comments stripped, one string each."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return [" ".join(part.split()) for part in re.split(r"[;{}]", code) if part.strip()]


def location_block(conf: str, pattern: str) -> str:
    """The body of the `location` whose match text is `pattern` (no nesting in ragq.conf)."""
    start = conf.index(f"location {pattern} {{")
    return conf[start : conf.index("\n    }", start)]


# --- Dockerfile -------------------------------------------------------------------------


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


# --- Prometheus rules and the Grafana dashboard -----------------------------------------


def rules() -> list[dict[str, Any]]:
    """Every rule (recording and alerting) of alerts.yml."""
    groups = load_yaml(PROMETHEUS / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


def records() -> dict[str, set[str]]:
    """Recording rules of alerts.yml: name → the labels they set."""
    return {r["record"]: set(r.get("labels", {})) for r in rules() if "record" in r}


def alerts() -> dict[str, dict[str, Any]]:
    """Alerting rules of alerts.yml by name."""
    return {r["alert"]: r for r in rules() if "alert" in r}


def scrape_job_names() -> frozenset[str]:
    """The scrape jobs of prometheus.yml: the values `up{job=…}` may match."""
    return frozenset(
        c["job_name"] for c in load_yaml(PROMETHEUS / "prometheus.yml")["scrape_configs"]
    )


def panels(found: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in found:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard() -> dict[str, Any]:
    """deploy/grafana's ragq dashboard."""
    return dict(json.loads((GRAFANA / "dashboards" / "ragq.json").read_text()))


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of the dashboard."""
    return [
        (p["title"], t["expr"]) for p in panels(dashboard()["panels"]) for t in p.get("targets", [])
    ]
