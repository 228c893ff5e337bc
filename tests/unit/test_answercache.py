"""The answer cache's request key: what makes two requests the same answer, and what not."""

from __future__ import annotations

from shared.answercache import cacheable, request_digest
from shared.config import Settings
from shared.schemas.jobs import JobCreate

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


def digest(**body: object) -> str:
    return request_digest(JobCreate.model_validate({"question": "q", **body}), SETTINGS)


def test_an_omitted_temperature_and_an_explicit_zero_are_one_request() -> None:
    assert digest() == digest(temperature=0) == digest(temperature=0.0)


def test_priority_and_metadata_do_not_change_the_answer() -> None:
    assert digest() == digest(priority="batch", metadata={"client": "x"})


def test_what_changes_the_answer_changes_the_key() -> None:
    keys = {digest(), digest(top_k=6), digest(max_tokens=9), digest(filters={"a": "b"})}
    keys |= {digest(question="other"), digest(model="other")}
    assert len(keys) == 6


def test_only_temperature_zero_is_cacheable() -> None:
    assert cacheable(JobCreate(question="q"), SETTINGS)
    assert not cacheable(JobCreate(question="q", temperature=0.7), SETTINGS)
    off = Settings(_env_file=None, answer_cache_ttl_s=0)  # type: ignore[call-arg]
    assert not cacheable(JobCreate(question="q"), off)
