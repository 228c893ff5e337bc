"""What one evaluation run asks and checks: its options, their defaults, the thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scripts.clicommon import DEFAULT_URL as DEFAULT_URL  # re-exported with the eval defaults

DEFAULT_DATA = Path("data/deploy_eval.jsonl")
DEFAULT_JSON_OUT = Path("eval-report.json")
DEFAULT_K = 5
DEFAULT_MRR_DEPTH = 10
DEFAULT_CONCURRENCY = 4
DEFAULT_REQUEST_TIMEOUT_S = 60.0
DEFAULT_KEYWORD_THRESHOLD = 0.85
MAX_TOP_K = 50  # the API's limit on `top_k`


@dataclass(frozen=True)
class Thresholds:
    """Minimum values of the overall metrics; None = not checked."""

    keyword_hit_rate: float | None = DEFAULT_KEYWORD_THRESHOLD
    hit_at_k: float | None = None
    mrr: float | None = None
    precision_at_k: float | None = None
    generated_rate: float | None = None  # share of questions the LLM answered (not degraded)
    valid_citation_rate: float | None = None  # of those, the share citing validly


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and how.

    Each question is asked with `top_k = max(k, mrr_depth)` so that MRR can look down to
    `mrr_depth` (citations are at most `top_k`); hit@k, recall@k and precision@k only look at
    the first `k` ranks. The answer is therefore generated from `max(k, mrr_depth)` chunks:
    pass `mrr_depth=k` to judge exactly the answer a client asking with `top_k=k` gets (MRR
    is then MRR@k).
    """

    url: str
    key: str
    data: Path = DEFAULT_DATA
    k: int = DEFAULT_K
    mrr_depth: int = DEFAULT_MRR_DEPTH
    concurrency: int = DEFAULT_CONCURRENCY
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    # a question whose POST /v1/rag timed out (504, the job still running) is followed with
    # GET /v1/jobs/{id}?wait= until this long after it was asked; None: not followed
    answer_timeout_s: float | None = None
    thresholds: Thresholds = Thresholds()
    json_out: Path | None = DEFAULT_JSON_OUT
    sample: int | None = None  # ask only this many questions, spread over the set
    max_tokens: int | None = None  # the answers' token budget; None: the API's default

    @property
    def request_top_k(self) -> int:
        """The `top_k` sent with every question."""
        return max(self.k, self.mrr_depth)
