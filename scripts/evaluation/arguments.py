"""The evaluation's command-line options, shared by `ragq eval`, `scripts/deploy_eval.py`
and `scripts/eval_gate.py`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from scripts.evaluation.options import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DATA,
    DEFAULT_JSON_OUT,
    DEFAULT_K,
    DEFAULT_KEYWORD_THRESHOLD,
    DEFAULT_MRR_DEPTH,
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_URL,
    MAX_TOP_K,
    EvalOptions,
    Thresholds,
)
from scripts.evaluation.report import EXIT_USAGE
from scripts.evaluation.runner import run


def _in_range(kind: type[int] | type[float], low: float, high: float, unit: str = "") -> Any:
    """An argparse `type`: the text as `kind` (int or float), between `low` and `high`."""
    what = "an integer" if kind is int else "a number"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be between {low:g} and {high:g}{unit}, got {text}"
            )
        return value

    return parse


_fraction = _in_range(float, 0.0, 1.0)


def add_eval_arguments(parser: argparse.ArgumentParser, *, target: bool = True) -> None:
    """The evaluation's options; `target=False` leaves out --url/--key (the gate sets them)."""
    if target:
        parser.add_argument(
            "--url", default=DEFAULT_URL, help="ragq base URL (default: %(default)s)"
        )
        parser.add_argument("--key", help="API key (default: $RAGQ_API_KEY)")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="question set, JSONL (default: %(default)s)"
    )
    parser.add_argument(
        "--threshold",
        type=_fraction,
        default=DEFAULT_KEYWORD_THRESHOLD,
        help="minimum keyword hit rate, 0-1 (default: %(default)s)",
    )
    parser.add_argument(
        "--min-hit-at-k", type=_fraction, help="minimum hit@k, 0-1 (default: not checked)"
    )
    parser.add_argument("--min-mrr", type=_fraction, help="minimum MRR, 0-1 (default: not checked)")
    parser.add_argument(
        "--min-precision", type=_fraction, help="minimum precision@k, 0-1 (default: not checked)"
    )
    parser.add_argument(
        "--min-generated",
        type=_fraction,
        help="minimum share of questions answered by the LLM, not degraded (default: not checked)",
    )
    parser.add_argument(
        "--min-valid-citations",
        type=_fraction,
        help="minimum share of generated answers whose [n] markers all name a given passage"
        " (at least one; default: not checked)",
    )
    parser.add_argument(
        "--sample",
        type=_in_range(int, 1, 100_000),
        help="ask only N of the questions, spread evenly over the set (default: all)",
    )
    parser.add_argument(
        "--top-k",
        type=_in_range(int, 1, MAX_TOP_K),
        default=DEFAULT_K,
        help="k of hit@k, recall@k and precision@k (default: %(default)s)",
    )
    parser.add_argument(
        "--mrr-depth",
        type=_in_range(int, 1, MAX_TOP_K),
        default=DEFAULT_MRR_DEPTH,
        help="MRR looks this deep; questions are asked with top_k=max(k, depth) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-tokens",
        type=_in_range(int, 1, 4096),
        default=None,
        help="the `max_tokens` each question is asked with (default: the API's, 512)",
    )
    parser.add_argument(
        "--concurrency",
        type=_in_range(int, 1, 256),
        default=DEFAULT_CONCURRENCY,
        help="questions in flight at once (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=_in_range(float, 1, 120, " seconds"),
        default=DEFAULT_REQUEST_TIMEOUT_S,
        help="the `timeout` of each POST /v1/rag, seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--answer-timeout",
        type=_in_range(float, 1, 3600, " seconds"),
        default=None,
        help="after a POST /v1/rag that timed out (504), follow its job until this many "
        "seconds after the question was asked (default: not followed, a 504 is a miss)",
    )
    parser.add_argument(
        "--json-out",
        default=str(DEFAULT_JSON_OUT),
        help="machine-readable report; empty string = none (default: %(default)s)",
    )


def options_from_args(args: argparse.Namespace, *, url: str, key: str) -> EvalOptions:
    """Evaluation options from parsed `add_eval_arguments` options."""
    return EvalOptions(
        url=url,
        key=key,
        data=args.data,
        k=args.top_k,
        mrr_depth=args.mrr_depth,
        concurrency=args.concurrency,
        request_timeout_s=args.timeout,
        answer_timeout_s=args.answer_timeout,
        thresholds=Thresholds(
            keyword_hit_rate=args.threshold,
            hit_at_k=args.min_hit_at_k,
            mrr=args.min_mrr,
            precision_at_k=args.min_precision,
            generated_rate=args.min_generated,
            valid_citation_rate=args.min_valid_citations,
        ),
        sample=args.sample,
        max_tokens=args.max_tokens,
        json_out=Path(args.json_out) if args.json_out else None,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """`ragq eval` / `scripts/deploy_eval.py`: options from the command line, then `run`."""
    key = args.key or os.environ.get("RAGQ_API_KEY")
    if not key:
        sys.stderr.write("ragq eval: an API key is needed: pass --key or set RAGQ_API_KEY\n")
        return EXIT_USAGE
    return run(options_from_args(args, url=args.url, key=key))
