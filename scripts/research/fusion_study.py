"""Offline study of dense fusion and per-document caps on the cached passage vectors
(scripts.bench.vectorcache): per set, each question's chunk scores under MiniLM and e5,
fused several ways, documents ranked by their best chunk (cap 1) or as the store's top-k
with a cap. Prints one line per variant with each set's hit@5/MRR@10 and the macro average
without the held-out set. Research only: defaults are then confirmed through ragq itself.

    python -m scripts.research.fusion_study [--sets a,b]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from scripts.bench.evaldata import data_set
from scripts.bench.retrieval_eval import _chunks
from scripts.bench.vectorcache import cache_dir
from scripts.evalsets.load import held_out
from scripts.evalsets.load import names as evalset_names
from shared.config import Settings
from workers.rag import sparse
from workers.rag.embeddings import EMBEDDED
from workers.rag.points import indexed_text

MODELS = ("all-minilm-l6-v2", "multilingual-e5-small")


def _load(model):
    with np.load(cache_dir() / f"{model}.npz") as data:
        return {str(k): row for k, row in zip(data["keys"], data["vectors"], strict=True)}


def _cut(text, n):
    """The first `n` characters, cut back to a word boundary."""
    if len(text) <= n:
        return text
    head = text[:n]
    return head[: head.rfind(" ")] if " " in head else head


def _digest(text):
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _z(s, n=100):
    top = np.sort(s)[-n:]
    mu, sd = top.mean(), top.std() + 1e-9
    return (s - mu) / sd


def _rrf(s, k=60):
    order = np.argsort(-s)
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    return 1.0 / (k + ranks)


def _prrf(s, w, k=10):
    order = np.argsort(-s)
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    return 1.0 / (ranks / w + k - 1)


def _scores_to_docs(scores, doc_of, top_k, cap):
    order = np.argsort(-scores)
    ranked, per = [], {}
    taken = 0
    for i in order:
        d = doc_of[i]
        if cap and per.get(d, 0) >= cap:
            continue
        per[d] = per.get(d, 0) + 1
        taken += 1
        if d not in ranked:
            ranked.append(d)
        if taken >= top_k:
            break
    return ranked


def _metrics(ranked, gold):
    hit = float(any(d in gold for d in ranked[:5]))
    rr = next((1 / r for r, d in enumerate(ranked[:10], 1) if d in gold), 0.0)
    return hit, rr


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default=",".join(["sample", "python-faq", *evalset_names()]))
    parser.add_argument("--titled", action="store_true", help="also MiniLM over title+section+text")
    parser.add_argument("--e5-chars", type=int, default=0, help="also e5 over the first N chars")
    args = parser.parse_args()
    caches = {m: _load(m) for m in MODELS}
    executor = ThreadPoolExecutor(2)
    embedders = {
        m: await asyncio.get_running_loop().run_in_executor(executor, EMBEDDED[m], executor)
        for m in MODELS
    }
    settings = Settings(_env_file=None)
    variants = {}
    ratio = []
    for name in args.sets.split(","):
        ds = data_set(name)
        chunks = _chunks(ds, settings)
        try:
            P = {m: np.stack([caches[m][_digest(c.text)] for c in chunks]) for m in MODELS}
        except KeyError:
            print(f"{name}: vectors not all cached, skipped")
            continue
        doc_of = [c.document_id for c in chunks]
        postings = {}
        for ci, c in enumerate(chunks):
            idx, val = sparse.encode_document(indexed_text(c))
            for t, v in zip(idx, val, strict=False):
                postings.setdefault(t, []).append((ci, v))
        n_chunks = len(chunks)

        def bm25(question, postings=postings, n_chunks=n_chunks):
            out = np.zeros(n_chunks)
            for t in set(sparse.encode_query(question)[0]):
                plist = postings.get(t, [])
                if not plist:
                    continue
                idf = math.log((n_chunks - len(plist) + 0.5) / (len(plist) + 0.5) + 1)
                for ci, v in plist:
                    out[ci] += idf * v
            return out

        Q = {
            m: np.asarray(await embedders[m].embed([q for q, _ in ds.questions], query=True))
            for m in MODELS
        }
        S = {m: Q[m] @ P[m].T for m in MODELS}
        if args.titled:
            titled_path = cache_dir() / "all-minilm-l6-v2@titled.npz"
            titled = _load("all-minilm-l6-v2@titled") if titled_path.is_file() else {}
            texts = [indexed_text(c) for c in chunks]
            missing = [t for t in dict.fromkeys(texts) if _digest(t) not in titled]
            for first in range(0, len(missing), 256):
                batch = missing[first : first + 256]
                for t, v in zip(batch, await embedders[MODELS[0]].embed(batch), strict=True):
                    titled[_digest(t)] = np.asarray(v, dtype=np.float32)
            np.savez(
                titled_path,
                keys=np.array(list(titled), dtype="U32"),
                vectors=np.stack(list(titled.values())),
            )
            S["titled"] = Q[MODELS[0]] @ np.stack([titled[_digest(t)] for t in texts]).T
        if args.e5_chars:
            tag = f"multilingual-e5-small@{args.e5_chars}"
            cut_path = cache_dir() / f"{tag}.npz"
            cut = _load(tag) if cut_path.is_file() else {}
            texts = [_cut(c.text, args.e5_chars) for c in chunks]
            missing = [t for t in dict.fromkeys(texts) if _digest(t) not in cut]
            started = time.perf_counter()
            for first in range(0, len(missing), 256):
                batch = missing[first : first + 256]
                for t, v in zip(batch, await embedders[MODELS[1]].embed(batch), strict=True):
                    cut[_digest(t)] = np.asarray(v, dtype=np.float32)
            if missing:
                rate = len(missing) / (time.perf_counter() - started)
                print(f"{name}: e5@{args.e5_chars} {rate:.1f} chunks/s over {len(missing)}")
                keys = np.array(list(cut), dtype="U32")
                np.savez(cut_path, keys=keys, vectors=np.stack(list(cut.values())))
            S["e5cut"] = Q[MODELS[1]] @ np.stack([cut[_digest(t)] for t in texts]).T
        for qi, (question, gold) in enumerate(ds.questions):
            a, b = S[MODELS[0]][qi], S[MODELS[1]][qi]
            lex = bm25(question)
            ens = a + 6 * b
            extra = {}
            if args.titled:
                t = S["titled"][qi]
                extra = {
                    "minilm titled": t,
                    "titled+e5 1:6": t + 6 * b,
                    "dbsf titled+e5": _z(t) + _z(b),
                    "dbsf titled+e5+bm25 .25": _z(t) + _z(b) + 0.25 * _z(lex),
                }
            if args.e5_chars:
                c5 = S["e5cut"][qi]
                extra |= {
                    "e5 cut": c5,
                    "minilm+e5cut 1:6": a + 6 * c5,
                    "dbsf minilm+e5cut": _z(a) + _z(c5),
                    "dbsf minilm+e5cut+bm25 .25": _z(a) + _z(c5) + 0.25 * _z(lex),
                }
            fused = {
                **extra,
                "minilm": a,
                "e5": b,
                "mean": (a + b) / 2,
                "mean 1:2": (a + 2 * b) / 3,
                "mean 1:3": (a + 3 * b) / 4,
                "mean 1:4": (a + 4 * b) / 5,
                "mean 1:6": (a + 6 * b) / 7,
                "dbsf30": _z(a, 30) + _z(b, 30),
                "dbsf300": _z(a, 300) + _z(b, 300),
                "dbsf": _z(a) + _z(b),
                "rrf60": _rrf(a) + _rrf(b),
                "minilm+bm25 z .25": _z(a) + 0.25 * _z(lex),
                "minilm+bm25 z .5": _z(a) + 0.5 * _z(lex),
                "minilm+bm25 z 1": _z(a) + _z(lex),
                "minilm rrf bm25 1:2": _prrf(a, 1) + _prrf(lex, 2),
                "e5 + bm25 z .5": _z(b) + 0.5 * _z(lex),
                "dbsf+bm25 .5": _z(a) + _z(b) + 0.5 * _z(lex),
                "dbsf+bm25 .25": _z(a) + _z(b) + 0.25 * _z(lex),
                "dbsf+bm25 1": _z(a) + _z(b) + _z(lex),
                "ens16 rrf bm25 3:1": _prrf(ens, 3) + _prrf(lex, 1),
                "ens16 rrf bm25 2:1": _prrf(ens, 2) + _prrf(lex, 1),
                "ens16 rrf bm25 1:1": _prrf(ens, 1) + _prrf(lex, 1),
                "rrf10": _rrf(a, 10) + _rrf(b, 10),
            }
            ratio.append(np.sort(a)[-100:].std() / np.sort(b)[-100:].std())
            for fname, s in fused.items():
                for top_k, cap in ((10, 3),):
                    ranked = _scores_to_docs(s, doc_of, top_k, cap)
                    key = f"{fname:24s}"
                    variants.setdefault(key, {}).setdefault(name, []).append(_metrics(ranked, gold))
    print(
        "sigma minilm / sigma e5 over top-100: median",
        np.median(ratio),
        "p10",
        np.percentile(ratio, 10),
        "p90",
        np.percentile(ratio, 90),
    )
    sets = list(args.sets.split(","))
    print(" " * 22, " ".join(s[:11].ljust(11) for s in sets), "macro")
    for key, per in variants.items():
        cells, macro = [], []
        for s in sets:
            if s in per:
                h = np.mean([x[0] for x in per[s]])
                r = np.mean([x[1] for x in per[s]])
                cells.append(f"{h:.2f}/{r:.2f}")
                if s != held_out():
                    macro.append((h, r))
            else:
                cells.append("-")
        mh = np.mean([m[0] for m in macro])
        mr = np.mean([m[1] for m in macro])
        print(key.ljust(22), " ".join(c.ljust(11) for c in cells), f"{mh:.3f}/{mr:.3f}")


asyncio.run(main())
