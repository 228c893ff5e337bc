"""`ragq ask`: one question through `POST /v1/rag`, the answer on stdout (streamed unless
`--no-stream`), then its citations; an answer built without the LLM is said so on stderr."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from scripts.clicommon import DEFAULT_URL, api_headers

# why an answer is extractive (a job's `degraded_reason`), and what the operator can do;
# the settings named are the worker's (the process that calls the LLM)
DEGRADED_NOTES = {
    "no_llm_configured": "no LLM configured: set RAGQ_LLM_BASE_URL for the ragq worker to an "
    "OpenAI-compatible server",
    "llm_unavailable": "the LLM did not answer: check the server at the worker's RAGQ_LLM_BASE_URL",
    "llm_timeout": "the LLM did not answer within the worker's RAGQ_LLM_TIMEOUT_S",
    "budget_exhausted": "today's spend budget is used up (the key's --daily-budget-usd or "
    "RAGQ_DAILY_BUDGET_USD)",
    "circuit_open": "the LLM failed repeatedly and its circuit breaker is open; answers are "
    "generated again once it recovers",
    "ungrounded": "the LLM's answer cited none of the passages (the worker's "
    "RAGQ_UNGROUNDED_POLICY=extractive)",
}


def add_ask_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `ragq ask`."""
    parser.add_argument("question", help="the question, in quotes")
    parser.add_argument("--url", default=DEFAULT_URL, help="the ragq API (default: %(default)s)")
    parser.add_argument("--key", help="API key (default: $RAGQ_API_KEY)")
    parser.add_argument(
        "--top-k",
        type=int,
        default=5,
        help="chunks to retrieve and cite, 1-50 (default: %(default)s)",
    )
    parser.add_argument(
        "--no-stream",
        action="store_true",
        help="wait for the whole answer instead of streaming it (default: stream)",
    )


def degraded_note(reason: str | None) -> str:
    """The stderr line saying an answer is extractive, and why."""
    why = DEGRADED_NOTES.get(reason or "", reason or "reason not given")
    return f"note: extractive answer, built without the LLM ({why})"


def run_ask(args: argparse.Namespace) -> int:
    """`ragq ask`: print the answer and its citations; exit 1 when it was refused or failed."""
    from httpx_sse import connect_sse

    from shared.events import AnswerDelta, JobCompleted, JobFailed, RetrievalCompleted, parse_event
    from shared.schemas.jobs import Citation

    body: dict[str, Any] = {"question": args.question, "top_k": args.top_k}
    citations: list[Citation] = []
    degraded, reason = False, None
    with httpx.Client(base_url=args.url, headers=api_headers(args.key), timeout=130) as client:
        if args.no_stream:
            response = client.post("/v1/rag", json=body)
            if response.status_code != 200:
                print(response.text, file=sys.stderr)
                return 1
            result = response.json()
            print(result["answer"])
            citations = [Citation.model_validate(c) for c in result["citations"]]
            degraded, reason = bool(result.get("degraded")), result.get("degraded_reason")
        else:
            with connect_sse(client, "POST", "/v1/rag", json={**body, "stream": True}) as source:
                if source.response.status_code != 200:
                    source.response.read()
                    print(source.response.text, file=sys.stderr)
                    return 1
                for sse in source.iter_sse():
                    event = parse_event(sse.event, sse.data)
                    if isinstance(event, RetrievalCompleted):
                        citations = event.citations
                    elif isinstance(event, AnswerDelta):
                        print(event.delta, end="", flush=True)
                    elif isinstance(event, JobCompleted) and event.job.result is not None:
                        degraded = event.job.result.degraded
                        reason = event.job.result.degraded_reason
                    elif isinstance(event, JobFailed):
                        print(f"\nfailed: {event.error.model_dump()}", file=sys.stderr)
                        return 1
            print()
    print()
    for c in citations:
        print(f"[{c.index}] {c.title} ({c.document_id}, chars {c.start}-{c.end})")
    if degraded:
        sys.stdout.flush()  # the note comes after the answer on a terminal too
        print(degraded_note(reason), file=sys.stderr)
    return 0
