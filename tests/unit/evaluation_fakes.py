"""Fakes of the evaluation's unit tests: hand-made questions and `POST /v1/rag` bodies,
and a stand-in for the API on an httpx mock transport."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from scripts.evaluation import EvalOptions, EvalQuestion, QuestionResult, score_response
from shared.schemas.jobs import RagResponse

KEY = "rk_secret_test_key"
Outcome = dict[str, Any] | int | Exception


def question(
    qid: str = "q1",
    *,
    docs: tuple[str, ...] = ("good",),
    keywords: tuple[str, ...] = ("VLT-4031",),
    kind: str = "exact",
) -> EvalQuestion:
    """A question of the eval set."""
    return EvalQuestion(
        id=qid,
        question=f"question {qid}?",
        expected_doc_ids=list(docs),
        expected_keywords=list(keywords),
        kind=kind,  # type: ignore[arg-type]
    )


def rag(
    answer: str, *docs: str, texts: tuple[str, ...] = (), degraded: bool = False
) -> dict[str, Any]:
    """A `POST /v1/rag` body citing one chunk per document id, in rank order."""
    citations = [
        {
            "index": rank,
            "document_id": doc,
            "chunk_id": f"{doc}:{rank}",
            "title": doc,
            "text": texts[rank - 1] if rank <= len(texts) else "",
            "start": 0,
            "end": 0,
            "score": 1.0 / rank,
            "rank": rank,
        }
        for rank, doc in enumerate(docs, start=1)
    ]
    return {
        "job_id": "job_1",
        "answer": answer,
        "citations": citations,
        "degraded": degraded,
        "degraded_reason": "no_llm_configured" if degraded else None,
        "cached": False,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "cost_usd": 0.0,
    }


def scored(q: EvalQuestion, body: dict[str, Any], *, k: int = 5) -> QuestionResult:
    """Score a hand-made response."""
    return score_response(q, RagResponse.model_validate(body), k=k, mrr_depth=10, latency_s=0.1)


def fake_ragq(
    outcomes: dict[str, Outcome],
    *,
    ready: int = 200,
    auth: int = 200,
    seen: list[dict[str, Any]] | None = None,
    polls: list[dict[str, Any]] | None = None,
) -> httpx.MockTransport:
    """A stand-in for the API: answers each question (by its text) with the given outcome
    (an int: that status, with `job_id` "job_x"); `GET /v1/jobs/job_x` answers the next of
    `polls` (job bodies), each poll's `wait` noted in its `"_wait"`."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":
            return httpx.Response(ready, json={"status": "ready" if ready == 200 else "not_ready"})
        if request.headers.get("authorization") != f"Bearer {KEY}" or auth == 401:
            return httpx.Response(401, json={"title": "Unauthorized", "status": 401})
        if request.url.path == "/v1/documents":
            return httpx.Response(auth, json={"object": "list", "data": [], "has_more": False})
        if request.url.path == "/v1/jobs/job_x" and polls:
            job = polls.pop(0)
            job["_wait"] = request.url.params["wait"]
            return httpx.Response(200, json=job)
        body = json.loads(request.content)
        if seen is not None:
            seen.append(body)
        outcome = outcomes[body["question"]]
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, int):
            problem = {"title": "Timeout", "status": outcome, "detail": "still running"}
            return httpx.Response(outcome, json={**problem, "job_id": "job_x"})
        return httpx.Response(200, json=outcome)

    return httpx.MockTransport(handler)


def write_questions(path: Path, questions: list[EvalQuestion]) -> Path:
    """Write a JSONL question file."""
    path.write_text("".join(q.model_dump_json() + "\n" for q in questions), encoding="utf-8")
    return path


def options_factory(tmp_path: Path) -> Callable[..., EvalOptions]:
    """Options of a run against the fake API, writing its report into tmp_path."""

    def make(questions: list[EvalQuestion], **overrides: Any) -> EvalOptions:
        values: dict[str, Any] = {
            "url": "http://ragq.test",
            "key": KEY,
            "data": write_questions(tmp_path / "eval.jsonl", questions),
            "json_out": tmp_path / "report.json",
        }
        values.update(overrides)
        return EvalOptions(**values)

    return make
