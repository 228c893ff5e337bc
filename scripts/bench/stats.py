"""Latency distributions as the reports print them: nearest-rank quantiles in a table."""

from __future__ import annotations

import math
from collections.abc import Sequence


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (q in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def fmt(value: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def dist_row(label: str, values: Sequence[float], digits: int = 0) -> str:
    cells = [fmt(quantile(values, q), digits) for q in (0.5, 0.9, 0.99, 1.0)]
    return f"| {label} | {len(values)} | " + " | ".join(cells) + " |"


DIST_HEADER = "| measure | n | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|---:|"
