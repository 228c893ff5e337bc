"""Fixtures of the deploy-file tests (test_deploy_*): compose.yaml and docs/API.md's metrics
table, each read once per module."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.deployfiles import API_MD, ROOT, load_yaml
from tests.unit.promql import Metric, contract_metrics


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml as Docker Compose reads it (anchors and merge keys resolved)."""
    data: dict[str, Any] = load_yaml(ROOT / "compose.yaml")
    return data


@pytest.fixture(scope="module")
def metrics() -> dict[str, Metric]:
    """API.md's metrics table."""
    return contract_metrics(API_MD.read_text())
