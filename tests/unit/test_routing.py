"""Routing and tiers without services: the prompt-prefix key, rendezvous order, the
bounded-load cap, and how a key's tier resolves to endpoints and models."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.schemas.jobs import Citation
from shared.tiers import llm_target, llm_targets
from workers.rag.prompt import affinity_key
from workers.rag.routing import load_cap, rendezvous_order

REPLICAS = ["http://vllm-0:8000/v1", "http://vllm-1:8000/v1", "http://vllm-2:8000/v1"]


def citation(chunk_id: str, index: int = 1, text: str = "Some text.") -> Citation:
    """A citation of `chunk_id`."""
    return Citation(
        index=index,
        document_id=chunk_id.split(":")[0],
        chunk_id=chunk_id,
        title="T",
        text=text,
        start=0,
        end=len(text),
        score=0.5,
        rank=index,
    )


def settings(tmp_path: Path, **values: Any) -> Settings:
    """Settings from these values only, never from the shell."""
    return Settings(_env_file=None, qdrant_path=tmp_path, **values)


def test_affinity_key_is_the_chunk_ids_in_prompt_order() -> None:
    """The key depends on the cited chunk ids and their order, not on their text or score."""
    a, b = citation("doc:1", 1), citation("doc:2", 2)
    same = [citation("doc:1", 1, text="Other text."), citation("doc:2", 2)]
    assert affinity_key([a, b]) == affinity_key(same)
    assert affinity_key([a, b]) != affinity_key([b, a])
    assert affinity_key([a, b]) != affinity_key([a])
    assert affinity_key([a]) != affinity_key([])
    assert len(affinity_key([])) == 64


def test_rendezvous_order_is_a_stable_permutation() -> None:
    """Every endpoint appears once, and the same key always gets the same order."""
    orders = [rendezvous_order(f"prefix-{i}", REPLICAS) for i in range(100)]
    assert all(sorted(o) == [0, 1, 2] for o in orders)
    assert orders == [rendezvous_order(f"prefix-{i}", REPLICAS) for i in range(100)]


def test_removing_a_replica_moves_only_its_own_prefixes() -> None:
    """With replica 1 gone, every prefix whose home was 0 or 2 keeps it; replica 1's
    prefixes go to their second choice."""
    survivors = [REPLICAS[0], REPLICAS[2]]
    moved_wrongly = []
    for i in range(1000):
        before = [REPLICAS[j] for j in rendezvous_order(f"prefix-{i}", REPLICAS)]
        after = survivors[rendezvous_order(f"prefix-{i}", survivors)[0]]
        expected = before[1] if before[0] == REPLICAS[1] else before[0]
        if after != expected:
            moved_wrongly.append(i)
    assert moved_wrongly == []


def test_prefixes_spread_evenly_over_replicas() -> None:
    """3000 prefixes: each replica is the home of 30-37 % of them."""
    homes = Counter(rendezvous_order(f"prefix-{i}", REPLICAS)[0] for i in range(3000))
    assert sorted(homes) == [0, 1, 2]
    assert all(900 <= n <= 1100 for n in homes.values()), homes


@pytest.mark.parametrize(
    ("in_flight", "endpoints", "factor", "cap"),
    [
        (0, 3, 1.25, 1),  # the first call anywhere
        (1, 3, 1.25, 1),
        (11, 3, 1.25, 5),  # 1.25 x 12 / 3 = 5 exactly: no float rounding up to 6
        (29, 3, 1.25, 13),
        (9, 2, 1.0, 5),
        (0, 1, 1.25, 2),
    ],
)
def test_load_cap_is_ceil_of_factor_times_mean(
    in_flight: int, endpoints: int, factor: float, cap: int
) -> None:
    """cap = ceil(factor x (in flight + 1) / endpoints)."""
    assert load_cap(in_flight, endpoints, factor) == cap


def test_some_endpoint_is_always_under_the_cap() -> None:
    """With factor >= 1 the least loaded endpoint can always take one more call."""
    for total in range(200):
        for n in range(1, 6):
            least = total // n  # the most the least loaded one can hold
            assert least + 1 <= load_cap(total, n, 1.0)


def test_tiers_resolve_to_their_endpoints_and_models(tmp_path: Path) -> None:
    """A configured tier gets its URLs and models; `default` and unknown tiers get
    RAGQ_LLM_BASE_URL / RAGQ_LLM_MODEL(S)."""
    s = settings(
        tmp_path,
        llm_base_url="http://small:8000/v1",
        llm_models=["alt"],
        llm_tiers={
            "enterprise": {
                "base_url": "http://large-0:8000/v1, http://large-1:8000/v1",
                "model": "big",
                "models": "lora-a,lora-b",
            }
        },
    )
    enterprise, default = llm_target(s, "enterprise"), llm_target(s, "default")
    assert enterprise.base_urls == ("http://large-0:8000/v1", "http://large-1:8000/v1")
    assert (enterprise.model, enterprise.models) == ("big", frozenset({"big", "lora-a", "lora-b"}))
    assert (default.base_urls, default.model) == (("http://small:8000/v1",), s.llm_model)
    assert default.models == frozenset({s.llm_model, "alt"})
    assert llm_target(s, "no-such-tier") == default
    assert sorted(llm_targets(s)) == ["default", "enterprise"]
    assert [enterprise.allows(m) for m in (None, "lora-a", "alt")] == [True, True, False]


@pytest.mark.parametrize(
    "tiers",
    [
        {"default": {"base_url": "http://x/v1", "model": "m"}},
        {"gold": {"base_url": "http://x/v1"}},
        {"gold": {"base_url": " ", "model": "m"}},
        {"gold": {"base_url": "http://x/v1", "model": "m", "modle": "typo"}},
    ],
)
def test_bad_tier_tables_are_refused_at_start_up(
    tmp_path: Path, tiers: dict[str, dict[str, str]]
) -> None:
    """A tier named `default`, without a URL or a model, or with an unknown field."""
    with pytest.raises(ValidationError):
        settings(tmp_path, llm_tiers=tiers)
