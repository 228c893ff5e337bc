"""Inference targets per key tier: the endpoints and models that serve a tier's jobs.

The tier `default` is `RAGQ_LLM_BASE_URL` / `RAGQ_LLM_MODEL` (plus `RAGQ_LLM_MODELS`); every
other tier is an entry of `RAGQ_LLM_TIERS`. A key whose tier the table does not name is
served by the default target, so a key created before its tier was configured (or after it
was removed) keeps working. The API validates a request's `model` against its key's target
and the worker calls that target's endpoints; both resolve the tier with `llm_target`.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import Settings

DEFAULT_TIER = "default"


@dataclass(frozen=True, slots=True)
class LLMTarget:
    """Where a tier's jobs are answered."""

    tier: str
    base_urls: tuple[str, ...]  # the tier's replicas (empty: no LLM, extractive answers)
    model: str  # used when a request names none
    models: frozenset[str]  # every model a request of this tier may name

    def allows(self, model: str | None) -> bool:
        """May a request of this tier ask for `model` (None = the tier's own)?"""
        return model is None or model in self.models


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def llm_targets(settings: Settings) -> dict[str, LLMTarget]:
    """Every configured tier's target, the default one included."""
    targets = {
        DEFAULT_TIER: LLMTarget(
            DEFAULT_TIER,
            tuple(settings.llm_base_urls),
            settings.llm_model,
            frozenset(settings.allowed_models),
        )
    }
    for name, entry in settings.llm_tiers.items():
        model = entry["model"]
        targets[name] = LLMTarget(
            name,
            _split(entry["base_url"]),
            model,
            frozenset({model, *_split(entry.get("models", ""))}),
        )
    return targets


def llm_target(settings: Settings, tier: str) -> LLMTarget:
    """The target of `tier`; the default one for `default` and for a tier not configured."""
    targets = llm_targets(settings)
    return targets.get(tier, targets[DEFAULT_TIER])
