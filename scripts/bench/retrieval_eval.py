"""Retrieval quality and ingest speed of each embedding option and search mode.

Two data sets: the sample corpus with `data/deploy_eval.jsonl`, and a real public one
built offline from the Python 3.11 documentation that Debian's `python3.11-doc` ships
(PSF licence): every FAQ question heading is a query, its answer section is the gold
document, and every other section of the FAQ, tutorial, how-tos, language reference
and "using" guides is a distractor. Runs ragq's own chunker, embedders and Qdrant
store (local mode, a temp folder) in-process; writes a section of docs/EVAL.md.

    python scripts/bench/retrieval_eval.py [--embedders wordllama-l2-supercat-256,all-minilm-l6-v2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from scripts.bench.reportfile import git_commit, markers, table, write_section
from scripts.evalsets.load import held_out
from scripts.evalsets.load import load as load_evalset
from scripts.evalsets.load import names as evalset_names
from shared.config import Settings
from workers.rag.chunking import chunk_text
from workers.rag.embeddings import Embedder, build_embedder
from workers.rag.points import StoredChunk
from workers.rag.vectorstore import ChunkStore, SearchMode

ROOT = Path(__file__).resolve().parents[2]
PYDOC = Path("/usr/share/doc/python3.11/html/_sources")
PYDOC_PARTS = ("faq", "tutorial", "howto", "reference", "using")
TENANT = "eval"
MODES = ("dense", "sparse", "hybrid")
RRF_WEIGHTS = ((1.0, 2.0), (1.0, 1.0), (2.0, 1.0))  # dense, sparse: the hybrid variants tried
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")


@dataclass
class DataSet:
    """Documents, and questions with the ids of the documents that answer them."""

    name: str
    docs: list[tuple[str, str, str]] = field(default_factory=list)  # id, title, text
    questions: list[tuple[str, set[str]]] = field(default_factory=list)


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of each reStructuredText section, in order."""
    lines = text.splitlines()
    heads = [
        i
        for i in range(len(lines) - 1)
        if lines[i].strip()
        and _UNDERLINE.match(lines[i + 1])
        and len(lines[i + 1].strip()) >= len(lines[i].strip())
        and not _UNDERLINE.match(lines[i])
    ]
    out = []
    for n, i in enumerate(heads):
        end = heads[n + 1] if n + 1 < len(heads) else len(lines)
        body = "\n".join(lines[i + 2 : end]).strip()
        body = "\n".join(ln for ln in body.splitlines() if not _UNDERLINE.match(ln)).strip()
        out.append((lines[i].strip(), body))
    return out


def python_faq() -> DataSet:
    """The Python FAQ as queries over the Python docs (needs Debian's python3.11-doc)."""
    if not PYDOC.is_dir():
        raise SystemExit(f"{PYDOC} is missing: apt-get install python3.11-doc")
    ds = DataSet("python-faq")
    for part in PYDOC_PARTS:
        for path in sorted((PYDOC / part).rglob("*.rst.txt")):
            rel = path.relative_to(PYDOC).as_posix().removesuffix(".rst.txt")
            for n, (heading, body) in enumerate(_sections(path.read_text(encoding="utf-8"))):
                if len(body) < 40:
                    continue
                doc_id = f"{rel}#{n}"
                # the question heading is the query, so the gold text must not contain it
                ds.docs.append((doc_id, "" if part == "faq" else heading, body))
                if part == "faq" and heading.endswith("?"):
                    ds.questions.append((heading, {doc_id}))
    return ds


def sample_corpus() -> DataSet:
    """The sample corpus with the deploy eval questions."""
    ds = DataSet("sample")
    corpus = ROOT / "data" / "corpus"
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        text = (corpus / entry["path"]).read_bytes().decode("utf-8")
        ds.docs.append((entry["id"], entry["title"], text))
    for line in (ROOT / "data" / "deploy_eval.jsonl").read_text().splitlines():
        q = json.loads(line)
        ds.questions.append((q["question"], set(q["expected_doc_ids"])))
    return ds


@dataclass
class Scores:
    """Retrieval quality over one data set for one configuration."""

    hit5: float
    mrr10: float


async def _index(
    ds: DataSet, store: ChunkStore, embedder: Embedder, settings: Settings
) -> tuple[int, float]:
    """Chunk, embed and upsert every document; returns (chunks, chunks/s)."""
    chunks: list[StoredChunk] = []
    for doc_id, title, text in ds.docs:
        for c in chunk_text(
            text, max_chars=settings.chunk_max_chars, overlap_chars=settings.chunk_overlap_chars
        ):
            chunks.append(
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
            )
    started = time.perf_counter()
    for i in range(0, len(chunks), 256):
        batch = chunks[i : i + 256]
        await store.upsert(batch, await embedder.embed([c.text for c in batch]))
    return len(chunks), len(chunks) / (time.perf_counter() - started)


async def _score(ds: DataSet, store: ChunkStore, embedder: Embedder, mode: SearchMode) -> Scores:
    hits = rr = 0.0
    for question, gold in ds.questions:
        [vector] = await embedder.embed([question])
        found = await store.search(TENANT, vector, text=question, limit=30, mode=mode)
        ranked: list[str] = []
        for hit in found:
            if hit.chunk.document_id not in ranked:
                ranked.append(hit.chunk.document_id)
        hits += any(d in gold for d in ranked[:5])
        rr += next((1 / r for r, d in enumerate(ranked[:10], start=1) if d in gold), 0.0)
    n = len(ds.questions)
    return Scores(hits / n, rr / n)


def evalset(name: str) -> DataSet:
    """A set built by `scripts.evalsets` (data/evalsets/NAME)."""
    docs, questions = load_evalset(name)
    ds = DataSet(name, [(d.id, d.title, d.text) for d in docs])
    ds.questions = [(q.question, set(q.expected_doc_ids)) for q in questions]
    return ds


def data_set(name: str) -> DataSet:
    """A data set by name: `sample`, `python-faq`, or one of data/evalsets/."""
    builders = {"sample": sample_corpus, "python-faq": python_faq}
    return builders[name]() if name in builders else evalset(name)


def macro_rows(rows: list[dict[str, object]], held_out: str) -> list[dict[str, object]]:
    """The mean hit@5 and MRR@10 of each (embedder, mode) over the sets, the held-out one
    left out (it is a final check, never a reason to choose)."""
    groups: dict[tuple[object, object], list[dict[str, object]]] = {}
    for row in rows:
        if row["data"] != held_out:
            groups.setdefault((row["embedder"], row["mode"]), []).append(row)
    return [
        {
            "data": f"macro average ({len(group)} sets)",
            "embedder": embedder,
            "mode": mode,
            "hit@5": round(sum(float(str(r["hit@5"])) for r in group) / len(group), 3),
            "MRR@10": round(sum(float(str(r["MRR@10"])) for r in group) / len(group), 3),
            "ingest chunks/s": "—",
            "chunks": sum(int(str(r["chunks"])) for r in group),
            "questions": sum(int(str(r["questions"])) for r in group),
        }
        for (embedder, mode), group in groups.items()
    ]


async def evaluate(embedders: list[str], sets: list[str]) -> list[dict[str, object]]:
    """Every (data set, embedder, mode) combination."""
    rows: list[dict[str, object]] = []
    executor = ThreadPoolExecutor(2)
    for ds in map(data_set, sets):
        for model in embedders:
            with tempfile.TemporaryDirectory() as tmp:
                settings = Settings(_env_file=None, qdrant_path=Path(tmp), embeddings_model=model)
                embedder = await build_embedder(settings, executor)
                store = await ChunkStore.open(settings, dim=embedder.dim)
                try:
                    n_chunks, rate = await _index(ds, store, embedder, settings)
                    runs: list[tuple[SearchMode, tuple[float, float] | None]] = [
                        ("dense", None),
                        ("sparse", None),
                    ]
                    runs += [("hybrid", w) for w in RRF_WEIGHTS]
                    for mode, weights in runs:
                        if mode == "sparse" and model != embedders[0]:
                            continue  # sparse-only does not depend on the embedder
                        if weights is not None:  # reopen the same folder with other weights
                            await store.aclose()
                            tuned = settings.model_copy(update={"rrf_weights": weights})
                            store = await ChunkStore.open(tuned, dim=embedder.dim)
                        s = await _score(ds, store, embedder, mode)
                        label = mode if weights is None else f"hybrid {weights[0]:g}:{weights[1]:g}"
                        rows.append(
                            {
                                "data": ds.name,
                                "docs": len(ds.docs),
                                "questions": len(ds.questions),
                                "chunks": n_chunks,
                                "embedder": "—" if mode == "sparse" else model,
                                "mode": label,
                                "hit@5": round(s.hit5, 3),
                                "MRR@10": round(s.mrr10, 3),
                                "ingest chunks/s": "—" if mode == "sparse" else round(rate, 1),
                            }
                        )
                        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                finally:
                    await store.aclose()
                    await embedder.aclose()
    executor.shutdown()
    return rows


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime())


def _markdown(rows: list[dict[str, object]], command: str, section: str, title: str) -> str:
    cols = ["data", "embedder", "mode", "hit@5", "MRR@10", "ingest chunks/s", "chunks", "questions"]
    begin, end = markers(section, "eval")
    lines = [
        begin,
        f"## {title}",
        "",
        f"Command: `{command}` (commit `{git_commit()}`, {_now()} UTC,"
        " 2-core machine, OPENBLAS_CORETYPE as set there). Document-level metrics: a question"
        " hits when a gold document is among the first 5 distinct documents retrieved; MRR@10"
        " over the first 10 distinct documents. Chunks/s include embedding and upsert into"
        " local-mode Qdrant.",
        "",
        *table(cols, [[r[c] for c in cols] for r in rows]),
        end,
    ]
    return "\n".join(lines)


def main() -> int:
    """Run the evaluation and write its section of docs/EVAL.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--embedders", default="wordllama-l2-supercat-256,all-minilm-l6-v2", help="comma list"
    )
    parser.add_argument(
        "--sets",
        default=",".join(["sample", "python-faq", *evalset_names()]),
        help="comma list: sample, python-faq and the sets in data/evalsets/ (default: all)",
    )
    parser.add_argument("--out", default="docs/EVAL.md")
    parser.add_argument("--section", default="retrieval", help="the EVAL.md section to write")
    args = parser.parse_args()
    sets = args.sets.split(",")
    rows = asyncio.run(evaluate(args.embedders.split(","), sets))
    title = "Retrieval: embedders × search modes"
    if len(sets) > 1:
        rows += macro_rows(rows, held_out())
        title += f", per set and their macro average (without the held-out `{held_out()}`)"
    section = _markdown(rows, shlex.join(["python", *sys.argv]), args.section, title)
    print(section)
    write_section(Path(args.out), section, args.section, kind="eval", intro="# Evaluation\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
