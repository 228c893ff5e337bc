"""Settings that only make sense together are refused together, at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.config import Settings


def test_job_records_must_outlive_the_longest_job(tmp_path: Path) -> None:
    """A running job's answer deltas leave its record's expiry alone, so a result TTL at
    or below the job timeout (a record that could expire mid-answer) is refused."""
    with pytest.raises(ValidationError, match="RAGQ_RESULT_TTL_S must be above"):
        Settings(_env_file=None, qdrant_path=tmp_path, result_ttl_s=300, job_timeout_s=300)  # type: ignore[call-arg]
    ok = Settings(_env_file=None, qdrant_path=tmp_path, result_ttl_s=301, job_timeout_s=300)  # type: ignore[call-arg]
    assert ok.result_ttl_s > ok.job_timeout_s
