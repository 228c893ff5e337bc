"""What an LLM call costs: a price table per model, in USD per million tokens.

Hosted models are priced per token by their vendor. A self-hosted vLLM model costs
GPU time, so its price is derived: `gpu_hour_usd / 3600 / tokens_per_s * 1e6` for
prompt (prefill) and completion (decode) throughput separately. The built-in entry
for the default model is such a derivation with assumed figures (one NVIDIA L4 at
0.80 USD/h serving Qwen2.5-7B-Instruct: 10,000 prompt and 1,500 completion tokens/s
aggregate under load); docs/COST.md explains them and how to measure your own.
Operators override or extend the table with `RAGQ_LLM_PRICES` (JSON), e.g.
`{"gpt-4o-mini": {"prompt_per_mtok": 0.15, "completion_per_mtok": 0.6},
  "qwen2.5-7b-instruct": {"gpu_hour_usd": 0.8, "prompt_tokens_per_s": 10000,
                          "completion_tokens_per_s": 1500}}`.
A model missing from the table is priced at the `*` entry, so spend is never zero
by accident.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.config import Settings

MTOK = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million prompt and completion tokens."""

    prompt_per_mtok: float
    completion_per_mtok: float

    @classmethod
    def from_gpu(
        cls, gpu_hour_usd: float, prompt_tokens_per_s: float, completion_tokens_per_s: float
    ) -> Price:
        """The price of a self-hosted model from its GPU's hourly cost and throughput."""
        per_second = gpu_hour_usd / 3600
        return cls(
            prompt_per_mtok=per_second / prompt_tokens_per_s * MTOK,
            completion_per_mtok=per_second / completion_tokens_per_s * MTOK,
        )

    @classmethod
    def parse(cls, entry: dict[str, float]) -> Price:
        """A table entry: per-token prices, or a GPU-hour derivation."""
        if "gpu_hour_usd" in entry:
            return cls.from_gpu(
                entry["gpu_hour_usd"],
                entry["prompt_tokens_per_s"],
                entry["completion_tokens_per_s"],
            )
        return cls(entry["prompt_per_mtok"], entry["completion_per_mtok"])

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for one call."""
        return (
            prompt_tokens * self.prompt_per_mtok + completion_tokens * self.completion_per_mtok
        ) / MTOK


SELF_HOSTED_DEFAULT = Price.from_gpu(0.80, 10_000, 1_500)
BUILT_IN: dict[str, Price] = {"qwen2.5-7b-instruct": SELF_HOSTED_DEFAULT, "*": SELF_HOSTED_DEFAULT}


class PriceTable:
    """Prices of every model this deployment may call."""

    def __init__(self, settings: Settings) -> None:
        self._prices = dict(BUILT_IN)
        for model, entry in settings.llm_prices.items():
            try:
                self._prices[model] = Price.parse(entry)
            except (KeyError, ZeroDivisionError) as exc:
                raise ValueError(f"RAGQ_LLM_PRICES entry for {model!r} is incomplete") from exc
        self._chars_per_token = settings.prompt_chars_per_token

    def price(self, model: str) -> Price:
        """The model's price (the `*` entry when it has none of its own)."""
        return self._prices.get(model) or self._prices["*"]

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for one call of `model`."""
        return self.price(model).cost(prompt_tokens, completion_tokens)

    def prompt_tokens(self, chars: int) -> int:
        """A deliberately high estimate of a prompt's tokens from its length."""
        return math.ceil(chars / self._chars_per_token)

    def worst_case(self, model: str, prompt_chars: int, max_tokens: int) -> float:
        """The most a call can cost: the estimated prompt plus `max_tokens` of completion."""
        return self.cost(model, self.prompt_tokens(prompt_chars), max_tokens)
