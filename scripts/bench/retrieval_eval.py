"""Retrieval quality, ingest speed and query latency of each embedder and search mode, over
every data set of `scripts.bench.evaldata`, with their macro average.

Runs ragq's own chunker, embedders and Qdrant store (local mode, a temp folder) in-process,
searching as the retriever does (`--top-k` chunks, at most `--cap` per document), and scores
the documents of the chunks found in order; writes a section of docs/EVAL.md. Passage vectors
are kept on disk between runs (`scripts.bench.vectorcache`); ingest speed is measured apart,
on chunks no cache holds.

    python -m scripts.bench.retrieval_eval --embedders all-minilm-l6-v2,multilingual-e5-small \\
        --sets debian-faq,borg-faq --hybrid score:1:0.25,rank:1:2 --cap 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shlex
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from scripts.bench.evalconfig import Hybrid, Models
from scripts.bench.evaldata import DataSet, data_set
from scripts.bench.reportfile import git_commit, markers, table, write_section
from scripts.evalsets.load import held_out
from scripts.evalsets.load import names as evalset_names
from shared.config import Settings
from workers.rag.chunking import chunk_text
from workers.rag.embeddings import Embedder
from workers.rag.ensemble import EnsembleEmbedder
from workers.rag.points import StoredChunk
from workers.rag.vectorstore import ChunkStore, SearchMode

TENANT = "eval"
SPEED_PROBE = 32  # chunks embedded fresh per set and embedder to measure ingest speed


@dataclass
class Scores:
    """Retrieval quality over one data set for one configuration."""

    hit5: float
    mrr10: float
    ndcg10: float
    p50_ms: float  # embedding the question plus searching


def _chunks(ds: DataSet, settings: Settings) -> list[StoredChunk]:
    return [
        StoredChunk(
            tenant=TENANT,
            document_id=doc_id,
            version="v1",
            index=c.index,
            start=c.start,
            end=c.end,
            text=c.text,
            title=title,
            section=c.section,
            metadata={},
        )
        for doc_id, title, text in ds.docs
        for c in chunk_text(
            text, max_chars=settings.chunk_max_chars, overlap_chars=settings.chunk_overlap_chars
        )
    ]


async def _ingest_rate(parts: list[Embedder], texts: list[str]) -> float:
    """Chunks per second through every part model, none of them cached."""
    started = time.perf_counter()
    for part in parts:
        await part.embed(texts)
    return len(texts) / (time.perf_counter() - started)


def doc_scores(ranked: list[str], gold: set[str]) -> tuple[float, float, float]:
    """hit@5, reciprocal rank within 10, nDCG@10 (binary gains) of one question."""
    hit = float(any(d in gold for d in ranked[:5]))
    rr = next((1 / r for r, d in enumerate(ranked[:10], start=1) if d in gold), 0.0)
    dcg = sum(1 / math.log2(r + 1) for r, d in enumerate(ranked[:10], start=1) if d in gold)
    ideal = sum(1 / math.log2(r + 1) for r in range(1, min(len(gold), 10) + 1))
    return hit, rr, dcg / ideal


async def _score(
    ds: DataSet,
    store: ChunkStore,
    vectors: list[tuple[list[float], float]],
    mode: SearchMode,
    *,
    top_k: int,
    cap: int | None,
) -> Scores:
    """Each question searched as the retriever does; `vectors` are the questions' embeddings
    with the seconds each took."""
    totals = [0.0, 0.0, 0.0]
    times = []
    for (question, gold), (vector, embed_s) in zip(ds.questions, vectors, strict=True):
        started = time.perf_counter()
        found = await store.search(
            TENANT, vector, text=question, limit=top_k, mode=mode, max_per_document=cap
        )
        searched_s = time.perf_counter() - started
        times.append(searched_s + (embed_s if mode != "sparse" else 0.0))
        ranked = list(dict.fromkeys(hit.chunk.document_id for hit in found))
        for i, value in enumerate(doc_scores(ranked, gold)):
            totals[i] += value
    n = len(ds.questions)
    return Scores(totals[0] / n, totals[1] / n, totals[2] / n, 1000 * statistics.median(times))


METRICS = ("hit@5", "MRR@10", "nDCG@10")


def macro_rows(rows: list[dict[str, object]], held_out: str) -> list[dict[str, object]]:
    """The mean of each metric of each (embedder, mode) over the sets, the held-out one
    left out (it is a final check, never a reason to choose)."""
    groups: dict[tuple[object, object], list[dict[str, object]]] = {}
    for row in rows:
        if row["data"] != held_out:
            groups.setdefault((row["embedder"], row["mode"]), []).append(row)

    def mean(group: list[dict[str, object]], column: str) -> float:
        return round(sum(float(str(r[column])) for r in group) / len(group), 3)

    return [
        {
            "data": f"macro average ({len(group)} sets)",
            "embedder": embedder,
            "mode": mode,
            **{metric: mean(group, metric) for metric in METRICS},
            "ingest chunks/s": "—",
            "query p50 ms": "—",
            "chunks": sum(int(str(r["chunks"])) for r in group),
            "questions": sum(int(str(r["questions"])) for r in group),
        }
        for (embedder, mode), group in groups.items()
    ]


async def _questions(ds: DataSet, embedder: Embedder) -> list[tuple[list[float], float]]:
    out = []
    for question, _ in ds.questions:
        started = time.perf_counter()
        [vector] = await embedder.embed([question], query=True)
        out.append((vector, time.perf_counter() - started))
    return out


async def _evaluate_one(
    ds: DataSet, spec: str, models: Models, args: argparse.Namespace, *, with_sparse: bool
) -> list[dict[str, object]]:
    """Every mode of one embedder over one data set."""
    parts, weights = await models.parts(spec)
    embedder: Embedder = parts[0] if len(parts) == 1 else EnsembleEmbedder(parts, weights)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, qdrant_path=Path(tmp), embeddings_model=spec)
        chunks = _chunks(ds, settings)
        rate = await _ingest_rate([p.inner for p in parts], [c.text for c in chunks[-SPEED_PROBE:]])
        store = await ChunkStore.open(settings, dim=embedder.dim)
        try:
            for first in range(0, len(chunks), 256):
                batch = chunks[first : first + 256]
                await store.upsert(batch, await embedder.embed([c.text for c in batch]))
            vectors = await _questions(ds, embedder)
            runs: list[tuple[SearchMode, Hybrid | None]] = [("dense", None)]
            runs += [("sparse", None)] if with_sparse else []
            runs += [("hybrid", h) for h in args.hybrid]
            for mode, hybrid in runs:
                if hybrid is not None:  # reopen the same folder with other fusion settings
                    await store.aclose()
                    store = await ChunkStore.open(hybrid.apply(settings), dim=embedder.dim)
                s = await _score(ds, store, vectors, mode, top_k=args.top_k, cap=args.cap or None)
                rows.append(
                    {
                        "data": ds.name,
                        "embedder": "—" if mode == "sparse" else spec,
                        "mode": mode if hybrid is None else f"hybrid {hybrid}",
                        "hit@5": round(s.hit5, 3),
                        "MRR@10": round(s.mrr10, 3),
                        "nDCG@10": round(s.ndcg10, 3),
                        "ingest chunks/s": "—" if mode == "sparse" else round(rate, 1),
                        "query p50 ms": round(s.p50_ms, 1),
                        "chunks": len(chunks),
                        "questions": len(ds.questions),
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        finally:
            await store.aclose()
    return rows


async def evaluate(args: argparse.Namespace) -> list[dict[str, object]]:
    """Every (data set, embedder, mode) combination."""
    rows: list[dict[str, object]] = []
    executor = ThreadPoolExecutor(2)
    models = Models(executor)
    try:
        for ds in map(data_set, args.sets):
            for n, spec in enumerate(args.embedders):
                rows += await _evaluate_one(ds, spec, models, args, with_sparse=n == 0)
    finally:
        await models.aclose()
        executor.shutdown()
    return rows


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime())


COLUMNS = ["data", "embedder", "mode", *METRICS, "ingest chunks/s", "query p50 ms", "chunks"]


def _markdown(rows: list[dict[str, object]], args: argparse.Namespace, title: str) -> str:
    begin, end = markers(args.section, "eval")
    cap = f"at most {args.cap} per document" if args.cap else "no cap per document"
    lines = [
        begin,
        f"## {title}",
        "",
        f"Command: `{shlex.join(['python', '-m', 'scripts.bench.retrieval_eval', *sys.argv[1:]])}`"
        f" (commit `{git_commit()}`, {_now()} UTC, 2-core machine). Each question is searched"
        f" as the retriever does ({args.top_k} chunks, {cap}); the documents of those chunks,"
        " in order, are scored: hit@5 when a gold document is among the first 5, MRR@10 and"
        " nDCG@10 (binary gains) over the first 10. Ingest chunks/s: embedding"
        f" {SPEED_PROBE} chunks of the set with no cache. Query p50: embedding the question"
        " and searching local-mode Qdrant.",
        "",
        *table(COLUMNS, [[r[c] for c in COLUMNS] for r in rows]),
        end,
    ]
    return "\n".join(lines)


def main() -> int:
    """Run the evaluation and write its section of docs/EVAL.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--embedders",
        type=lambda v: v.split(","),
        default="all-minilm-l6-v2",
        help="comma list of embedders: a model, or an ensemble `a+b` / `a*2+b`",
    )
    parser.add_argument(
        "--sets",
        type=lambda v: v.split(","),
        default=["sample", "python-faq", *evalset_names()],
        help="comma list: sample, python-faq and the sets in data/evalsets/ (default: all)",
    )
    parser.add_argument(
        "--hybrid",
        type=lambda v: [Hybrid.parse(item) for item in v.split(",") if item],
        default=[
            Hybrid("score", (1.0, 0.25)),
            Hybrid("score", (1.0, 0.5)),
            Hybrid("rank", (1.0, 2.0)),
        ],
        help="hybrid fusions to try, comma list of score:D:S / rank:D:S (dense:BM25 weights)",
    )
    parser.add_argument("--top-k", type=int, default=10, help="chunks per search")
    parser.add_argument("--cap", type=int, default=3, help="chunks per document (0: no cap)")
    parser.add_argument("--out", default="docs/EVAL.md")
    parser.add_argument("--section", default="retrieval", help="the EVAL.md section to write")
    args = parser.parse_args()
    rows = asyncio.run(evaluate(args))
    title = "Retrieval: embedders × search modes"
    if len(args.sets) > 1:
        rows += macro_rows(rows, held_out())
        title += f", per set and their macro average (without the held-out `{held_out()}`)"
    section = _markdown(rows, args, title)
    print(section)
    write_section(Path(args.out), section, args.section, kind="eval", intro="# Evaluation\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
