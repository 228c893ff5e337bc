"""Retrieval quality through the public API, as an outside client measures it: a real stack
(`ragq serve`, one `ragq worker`, embedded Qdrant, no LLM: extractive answers), each set's
documents posted to `POST /v1/documents`, each question asked with `POST /v1/jobs` and followed
to its end, the documents of the cited passages scored in citation order (hit@5, MRR@10,
nDCG@10, as `scripts.bench.retrieval_eval` does). Also the retrieval stage's own time
(`timings_ms.retrieval`) per question, and the set's ingest time. Writes a section of
docs/EVAL.md.

    python -m scripts.bench.api_retrieval [--sets debian-faq,weechat-faq] [--top-k 10]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from scripts.bench.evaldata import DataSet, data_set
from scripts.bench.reportfile import git_commit, markers, table, write_section
from scripts.bench.retrieval_eval import doc_scores
from scripts.evalsets.load import held_out
from scripts.evalsets.load import names as evalset_names
from scripts.harness import CorpusDoc, Stack, ingest
from shared.config import Settings

REDIS_URL = "redis://127.0.0.1:6379/14"  # the benchmarks' DB: flushed before each set
INGEST_TIMEOUT_S = 3600.0
FOLLOW_S = 30
MAX_ID = 128  # the API's longest document id


def api_id(doc_id: str) -> str:
    """The set's document id as the API accepts ids (`[A-Za-z0-9_.:-]{1,128}`): other
    characters become `-`, and a longer id keeps its start and a hash of the whole."""
    safe = re.sub(r"[^A-Za-z0-9_.:-]", "-", doc_id)
    if len(safe) <= MAX_ID:
        return safe
    return f"{safe[: MAX_ID - 17]}-{hashlib.sha256(doc_id.encode()).hexdigest()[:16]}"


async def _ask(client: httpx.AsyncClient, question: str, top_k: int) -> dict[str, Any]:
    """One question as a job, followed with long polls until it ends."""
    body = {"question": question, "top_k": top_k, "temperature": 0}
    response = await client.post("/v1/jobs", json=body)
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
        polled = await client.get(f"/v1/jobs/{job_id}", params={"wait": FOLLOW_S})
        polled.raise_for_status()
        job: dict[str, Any] = polled.json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job


async def _measure(
    client: httpx.AsyncClient, ds: DataSet, args: argparse.Namespace
) -> dict[str, float]:
    slots = asyncio.Semaphore(args.concurrency)

    async def one(question: str) -> dict[str, Any]:
        async with slots:
            return await _ask(client, question, args.top_k)

    jobs = await asyncio.gather(*(one(q) for q, _ in ds.questions))
    failed = sum(job["status"] != "completed" for job in jobs)
    totals = [0.0, 0.0, 0.0]
    retrieval_ms = []
    for job, (_, gold_ids) in zip(jobs, ds.questions, strict=True):
        gold = {api_id(g) for g in gold_ids}
        result = job.get("result") or {}
        cited = [c["document_id"] for c in result.get("citations", [])]
        for i, value in enumerate(doc_scores(list(dict.fromkeys(cited)), gold)):
            totals[i] += value
        retrieval_ms.append(result.get("timings_ms", {}).get("retrieval", float("nan")))
    n = len(ds.questions)
    return {
        "hit@5": round(totals[0] / n, 3),
        "MRR@10": round(totals[1] / n, 3),
        "nDCG@10": round(totals[2] / n, 3),
        "retrieval p50 ms": round(statistics.median(retrieval_ms), 1),
        "failed": failed,
    }


async def _one_set(ds: DataSet, args: argparse.Namespace, model: str) -> dict[str, object]:
    """A fresh stack for one set: ingest, ask, score."""
    redis = Redis.from_url(args.redis_url)
    await redis.flushdb()
    with tempfile.TemporaryDirectory(prefix="ragq-apiret-") as tmp:
        env = {
            **os.environ,
            "RAGQ_REDIS_URL": args.redis_url,
            "RAGQ_KEY_PREFIX": "ragqapiret",
            "RAGQ_QDRANT_URL": "",
            "RAGQ_QDRANT_PATH": str(Path(tmp) / "qdrant"),
            "RAGQ_LLM_BASE_URL": "",
            "RAGQ_EMBEDDINGS_MODEL": model,
            "RAGQ_DEFAULT_RPM": "0",
            "RAGQ_WORKER_DRAIN_S": "0",
        }
        stack = Stack(Path(tmp), env)
        try:
            await stack.start_worker()
            await stack.start_api()
            key = await stack.create_key("apiret")
            docs = [CorpusDoc(api_id(doc_id), title, text, {}) for doc_id, title, text in ds.docs]
            async with httpx.AsyncClient(
                base_url=stack.url,
                headers={"Authorization": f"Bearer {key}"},
                timeout=httpx.Timeout(FOLLOW_S + 30.0),
            ) as client:
                started = time.perf_counter()
                await ingest(client, docs, timeout_s=INGEST_TIMEOUT_S)
                ingest_s = time.perf_counter() - started
                scores = await _measure(client, ds, args)
        finally:
            await stack.stop()
            await redis.flushdb()
            await redis.aclose()
    row: dict[str, object] = {"data": ds.name, "embedder": model, **scores}
    row |= {"ingest s": round(ingest_s, 1), "docs": len(ds.docs), "questions": len(ds.questions)}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def _macro(rows: list[dict[str, object]], label: str) -> dict[str, object]:
    def mean(column: str) -> float:
        return round(statistics.fmean(float(str(r[column])) for r in rows), 3)

    return {
        "data": label,
        "embedder": rows[0]["embedder"],
        **{m: mean(m) for m in ("hit@5", "MRR@10", "nDCG@10")},
        "retrieval p50 ms": "—",
        "failed": sum(int(str(r["failed"])) for r in rows),
        "ingest s": "—",
        "docs": sum(int(str(r["docs"])) for r in rows),
        "questions": sum(int(str(r["questions"])) for r in rows),
    }


COLUMNS = ["data", "embedder", "hit@5", "MRR@10", "nDCG@10", "retrieval p50 ms", "failed"]
COLUMNS += ["ingest s", "docs", "questions"]


async def run(args: argparse.Namespace) -> list[dict[str, object]]:
    """Every set on its own stack, then the macro average of those not held out."""
    model = args.embedding_model or Settings(_env_file=None).embeddings_model
    rows = [await _one_set(data_set(name), args, model) for name in args.sets]
    tuned = [r for r in rows if r["data"] != held_out()]
    if len(tuned) > 1:
        rows.append(_macro(tuned, f"macro average ({len(tuned)} sets, held-out apart)"))
    return rows


def main() -> int:
    """Measure every set and write the section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", type=lambda v: v.split(","), default=evalset_names())
    parser.add_argument("--embedding-model", default="", help="default: ragq's default")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--redis-url", default=REDIS_URL, help="flushed before and after")
    parser.add_argument("--out", default="docs/EVAL.md")
    parser.add_argument("--section", default="retrieval-api")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    begin, end = markers(args.section, "eval")
    command = " ".join(["python -m scripts.bench.api_retrieval", *sys.argv[1:]])
    section = "\n".join(
        [
            begin,
            f"## Retrieval through the public API, {args.concurrency} question(s) at a time",
            "",
            f"Command: `{command}` (commit `{git_commit()}`, 2-core machine). A fresh stack per"
            " set (one worker, embedded Qdrant, extractive answers); documents posted to"
            f" `POST /v1/documents`, questions asked with `POST /v1/jobs` (`top_k`"
            f" {args.top_k}, {args.concurrency} at a time) and followed to their end; the cited"
            " documents scored in citation order. Retrieval p50: the job's"
            " `timings_ms.retrieval` (embedding the question, searching, filtering).",
            "",
            *table(COLUMNS, [[r[c] for c in COLUMNS] for r in rows]),
            end,
        ]
    )
    print(section)
    write_section(Path(args.out), section, args.section, kind="eval", intro="# Evaluation\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
