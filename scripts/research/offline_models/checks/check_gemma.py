"""Sanity check of the numpy EmbeddingGemma-300M encoder on pairs.json (plus timings).

Run: nice -n 19 /tmp/rerankers/venv/bin/python /tmp/rerankers/checks/check_gemma.py [--no-timing]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "loaders"))
sys.path.insert(0, str(HERE))

from check_embedders import load_pairs, timing_passages  # noqa: E402
from embeddinggemma import GemmaEncoder  # noqa: E402


def main() -> None:
    """Print the sanity row, then (unless --no-timing) query p50 and passages/s."""
    load0 = os.getloadavg()
    start = time.perf_counter()
    enc = GemmaEncoder(HERE.parent / "models/embeddinggemma-300m", max_tokens=256)
    load_s = time.perf_counter() - start
    queries, relevant, extra = load_pairs()
    q = enc.encode_queries(queries)
    p = enc.encode_documents(relevant + extra)
    sims = q @ p.T
    margins = [float(sims[i, i] - np.delete(sims[i], i).max()) for i in range(len(queries))]
    row = {
        "model": "EmbeddingGemma-300M (numpy, fp32)",
        "load": load0,
        "load_seconds": round(load_s, 1),
        "top1": f"{sum(m > 0 for m in margins)}/{len(queries)}",
        "mean_rel_cos": round(float(np.mean(np.diag(sims))), 3),
        "min_margin": round(min(margins), 3),
        "mean_margin": round(float(np.mean(margins)), 3),
    }
    if "--no-timing" not in sys.argv:
        times = []
        for i in range(20):
            t0 = time.perf_counter()
            enc.encode_queries([f"How do I configure the retry policy number {i}?"])
            times.append(time.perf_counter() - t0)
        passages = timing_passages(16)
        t0 = time.perf_counter()
        enc.encode_documents(passages)
        row["query_p50_ms"] = round(statistics.median(times) * 1000, 1)
        row["passages_per_s"] = round(len(passages) / (time.perf_counter() - t0), 2)
    row["load_after"] = os.getloadavg()[0]
    print(json.dumps(row))


if __name__ == "__main__":
    main()
