"""The benchmarks' data: five documents of the sample corpus and the questions of the
deploy eval set that only they answer."""

from __future__ import annotations

import json
from collections.abc import Sequence

from scripts.bench.reportfile import read_text
from scripts.harness import ROOT, CorpusDoc, read_corpus

CORPUS = ROOT / "data" / "corpus"
EVAL_SET = ROOT / "data" / "deploy_eval.jsonl"
DOCS = (
    "vault-key-rotation",
    "gate-rate-limits",
    "relay-consumer-tuning",
    "atlas-rollback-runbook",
    "beacon-silences",
)
FALLBACK_QUESTIONS = (
    "How do I rotate a signing key in vault?",
    "What is gate's default rate limit?",
    "How do I tune relay consumers?",
    "How do I roll back a bad atlas deploy?",
    "How long can a beacon silence last?",
)
MAX_QUESTIONS = 10


def documents(doc_ids: Sequence[str]) -> list[CorpusDoc]:
    """The sample corpus's documents of `doc_ids`, in that order."""
    by_id = {doc.id: doc for doc in read_corpus(CORPUS)}
    return [by_id[doc_id] for doc_id in doc_ids]


def load_questions(doc_ids: Sequence[str]) -> list[str]:
    """Questions of the eval set that only need the ingested documents."""
    wanted = set(doc_ids)
    questions: list[str] = []
    for line in read_text(EVAL_SET).splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        if set(entry.get("expected_doc_ids") or ()) <= wanted and entry.get("question"):
            questions.append(entry["question"])
    return questions[:MAX_QUESTIONS] or list(FALLBACK_QUESTIONS)
